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
            .then(|| find_binary(bin_dirs, "kube-apiserver").and_then(|b| binary_version(&b).ok()))
            .flatten(),
        etcd_binary: detect
            .etcd
            .then(|| find_binary(bin_dirs, "etcd").and_then(|b| binary_version(&b).ok()))
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

/// How long `<binary> --version` may take. Generous: a cold `kube-apiserver --version` (page cache
/// dropped) takes 2.4 s here, and a loaded host took longer than an earlier 5 s bound; running out
/// of it is a warning wherever a configured or pinned version can stand in.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(30);
/// A version line is short; more output than this is not read.
const VERSION_OUTPUT_LIMIT: u64 = 64 * 1024;

/// Why `<binary> --version` gave no version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("could not read a version from `{binary} --version`{why}")]
    Unreadable { binary: PathBuf, why: String },
    #[error("`{binary} --version` did not answer within {}s", .after.as_secs())]
    TimedOut { binary: PathBuf, after: Duration },
}

/// Runs `binary --version` (bounded to [`VERSION_TIMEOUT`]) and finds the version in its output.
pub fn binary_version(binary: &Path) -> Result<Version, VersionError> {
    binary_version_within(binary, VERSION_TIMEOUT)
}

/// [`binary_version`] with another bound.
pub fn binary_version_within(binary: &Path, limit: Duration) -> Result<Version, VersionError> {
    let unreadable = |why: String| VersionError::Unreadable {
        binary: binary.to_path_buf(),
        why,
    };
    let mut child = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| unreadable(format!(": {e}")))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(VersionError::TimedOut {
                    binary: binary.to_path_buf(),
                    after: limit,
                });
            }
            Err(e) => return Err(unreadable(format!(": {e}"))),
        }
    }
    let mut out = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = std::io::Read::read_to_string(
            &mut std::io::Read::take(stdout, VERSION_OUTPUT_LIMIT),
            &mut out,
        );
    }
    Version::find_in(&out).ok_or_else(|| unreadable(String::new()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn versions_are_read_and_a_slow_binary_is_a_timeout_not_an_unknown_version() {
        let dir = tempfile::tempdir().unwrap();
        let fast = script(dir.path(), "kube-apiserver", "echo Kubernetes v1.36.2");
        assert_eq!(
            binary_version_within(&fast, Duration::from_secs(20)).unwrap(),
            "v1.36.2".parse().unwrap()
        );
        let slow = script(dir.path(), "slow", "exec sleep 30");
        let err = binary_version_within(&slow, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, VersionError::TimedOut { .. }), "{err}");
        let silent = script(dir.path(), "silent", "true");
        let err = binary_version_within(&silent, Duration::from_secs(20)).unwrap_err();
        assert!(matches!(err, VersionError::Unreadable { .. }), "{err}");
        assert!(VERSION_TIMEOUT >= Duration::from_secs(20));
    }
}
