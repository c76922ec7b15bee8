//! What the configuration falls back on, read from this host: the hostname, the default route's
//! address, the versions of the component binaries, proxy variables and which CA directories
//! exist. Reads `/proc/net/route`, the interfaces, and runs `<binary> --version`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::HostFacts;
use crate::render::OPTIONAL_CA_DIRS;
use crate::version::Version;

/// Which binary versions to detect (those the configuration does not pin).
#[derive(Debug, Clone, Copy)]
pub struct Detect {
    pub kubernetes: bool,
    pub etcd: bool,
}

/// Gathers the host's facts; `bin_dirs` are searched for `kube-apiserver` and `etcd` as `detect`
/// asks.
pub fn gather(bin_dirs: &[PathBuf], detect: Detect) -> HostFacts {
    let hostname = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into());
    HostFacts {
        hostname,
        default_address: default_route_address(),
        kubernetes_binary: detect
            .kubernetes
            .then(|| find_binary(bin_dirs, "kube-apiserver").and_then(|b| binary_version(&b)))
            .flatten(),
        etcd_binary: detect
            .etcd
            .then(|| find_binary(bin_dirs, "etcd").and_then(|b| binary_version(&b)))
            .flatten(),
        proxy_env: proxy_env(),
        existing_ca_dirs: OPTIONAL_CA_DIRS
            .iter()
            .filter(|(_, dir)| Path::new(dir).is_dir())
            .map(|(_, d)| d.to_string())
            .collect(),
    }
}

/// The first executable named `name` in `dirs` ([`super::lookup`]).
pub fn find_binary(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    super::lookup::look_path(name, dirs)
}

/// Runs `binary --version` (bounded to 5 s) and finds the version in its output.
pub fn binary_version(binary: &Path) -> Option<Version> {
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    Version::find_in(&out)
}

/// kubeadm's `GetProxyEnvVars`: every `*_proxy` variable, either case.
fn proxy_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| name.to_ascii_lowercase().ends_with("_proxy"))
        .collect()
}

/// The IPv4 address of the default route's interface (kubeadm's `ChooseHostInterface`).
fn default_route_address() -> Option<IpAddr> {
    let routes = std::fs::read_to_string("/proc/net/route").ok()?;
    let interface = routes.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        (fields.get(1) == Some(&"00000000")).then(|| fields[0].to_string())
    })?;
    nix::ifaddrs::getifaddrs().ok()?.find_map(|ifaddr| {
        if ifaddr.interface_name != interface {
            return None;
        }
        let address = ifaddr.address?;
        address.as_sockaddr_in().map(|sin| IpAddr::V4(sin.ip()))
    })
}
