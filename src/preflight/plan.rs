//! Which checks apply to a configuration, and the thin layer that reads the host for each one
//! through a [`HostProbe`] and hands the answer to the pure decisions of `decide`.
//!
//! Host paths read (through the root): the static pod manifests, the etcd data directory, the
//! external etcd client certificates and `/var/lib/boot/ledger.json`. Kernel state
//! (`/proc/sys/net/...`, `/proc/swaps`, uid, CPUs, RAM, ports) is always this machine's: `--root`
//! moves files, not the kernel the components will run on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use super::check::{
    binary_check_name, path_check_name, port_check_name, version_check_name, Check, Outcome,
};
use super::decide;
use super::ports::component_ports;
use super::probe::HostProbe;
use crate::config::{Config, RuntimeKind};
use crate::host::facts::VersionError;
use crate::host::HostRoot;
use crate::version::Version;

/// kubeadm's `ipv4Forward` and `ipv6DefaultForwarding` (`checks.go`).
const IPV4_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/default/forwarding";
const PROC_SWAPS: &str = "/proc/swaps";

/// Every applicable check, evaluated, in kubeadm's order where kubeadm has the check.
pub fn checks(cfg: &Config, root: &HostRoot, probe: &dyn HostProbe) -> Vec<Check> {
    let mut out = vec![Check::error(
        "ExistingInstallation",
        decide::existing_installation(probe.exists(&root.path(decide::LEDGER))),
    )];
    out.push(Check::error(
        "IsPrivilegedUser",
        if root.is_system() {
            decide::privileged_user(probe.uid())
        } else {
            Outcome::Skipped("--root runs need no root".into())
        },
    ));
    out.push(Check::error("NumCPU", decide::num_cpu(probe.cpu_count())));
    out.push(Check::error("Mem", decide::memory(probe.total_memory())));

    let addresses = bind_addresses(cfg.advertise_address);
    for (_, port) in component_ports(cfg) {
        let attempts: Vec<(IpAddr, std::io::Result<()>)> = addresses
            .iter()
            .map(|ip| (*ip, probe.bind(SocketAddr::new(*ip, port))))
            .collect();
        out.push(Check::error(
            port_check_name(port),
            decide::port(port, &attempts),
        ));
    }

    for manifest in manifests(cfg) {
        out.push(Check::error(
            path_check_name("FileAvailable", &manifest),
            decide::file_available(&manifest, probe.exists(&root.path(&manifest))),
        ));
    }
    out.push(Check::warning(
        "Swap",
        decide::swap(probe.read_to_string(Path::new(PROC_SWAPS))),
    ));
    // With `runtime: oci` the components come from their images (pulled in preflight, as
    // kubeadm's `ImagePull` checks), so host binaries are neither needed nor checked.
    if cfg.boot.runtime == RuntimeKind::Process {
        out.extend(binary_checks(cfg, probe));
    }
    for file in forwarding_files(cfg) {
        out.push(Check::error(
            path_check_name("FileContent", file),
            decide::file_content(file, "1", probe.read_to_string(Path::new(file))),
        ));
    }

    if let Some(local) = cfg.local_etcd() {
        let data_dir = Path::new(&local.data_dir);
        out.push(Check::error(
            path_check_name("DirAvailable", data_dir),
            decide::dir_available(data_dir, probe.dir_state(&root.path(data_dir))),
        ));
    }
    if let Some(external) = &cfg.cluster.etcd.external {
        for file in [&external.ca_file, &external.cert_file, &external.key_file] {
            if !file.is_empty() {
                let file = Path::new(file);
                out.push(Check::error(
                    super::EXTERNAL_ETCD_FILES,
                    decide::file_existing(file, probe.exists(&root.path(file))),
                ));
            }
        }
    }
    out
}

/// The host paths of the manifests `boot init` will write (no etcd with external etcd).
fn manifests(cfg: &Config) -> Vec<PathBuf> {
    let mut components = vec![
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ];
    if cfg.local_etcd().is_some() {
        components.push("etcd");
    }
    components
        .into_iter()
        .map(|c| Path::new(&cfg.static_pod_path).join(format!("{c}.yaml")))
        .collect()
}

/// Where a port is tried: the IPv4 wildcard as kubeadm (`net.Listen("tcp", ":port")`), then the
/// IPv6 wildcard, both loopbacks and the advertise address, since a process holding only one
/// of those would make the component fail to bind just the same.
fn bind_addresses(advertise: IpAddr) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = vec![
        Ipv4Addr::UNSPECIFIED.into(),
        Ipv6Addr::UNSPECIFIED.into(),
        Ipv4Addr::LOCALHOST.into(),
        Ipv6Addr::LOCALHOST.into(),
    ];
    if !out.contains(&advertise) {
        out.push(advertise);
    }
    out
}

/// kubeadm checks IPv4 forwarding when the advertise address or any service or pod CIDR is IPv4,
/// IPv6 forwarding likewise (`InitNodeChecks`).
fn forwarding_files(cfg: &Config) -> Vec<&'static str> {
    let networking = &cfg.cluster.networking;
    let mut families: Vec<bool> = vec![cfg.advertise_address.is_ipv6()];
    families.extend(
        networking
            .service_subnet
            .0
            .iter()
            .map(|n| n.addr().is_ipv6()),
    );
    if let Some(pods) = &networking.pod_subnet {
        families.extend(pods.0.iter().map(|n| n.addr().is_ipv6()));
    }
    let mut files = Vec::new();
    if families.contains(&false) {
        files.push(IPV4_FORWARD);
    }
    if families.contains(&true) {
        files.push(IPV6_FORWARDING);
    }
    files
}

/// `FileExisting-<binary>` for each component binary, and `BinaryVersion-<binary>` for each one
/// found. The `--version` runs go in parallel: each may take up to its time bound.
fn binary_checks(cfg: &Config, probe: &dyn HostProbe) -> Vec<Check> {
    let mut binaries = Vec::new();
    if cfg.local_etcd().is_some() {
        binaries.push("etcd");
    }
    binaries.extend([
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]);
    let searched = cfg
        .bin_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let found: Vec<(&str, Option<PathBuf>)> = binaries
        .iter()
        .map(|b| (*b, probe.find_binary(cfg.bin_dirs(), b)))
        .collect();
    let versions: Vec<Option<Result<Version, VersionError>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = found
            .iter()
            .map(|(_, path)| scope.spawn(move || path.as_deref().map(|p| probe.binary_version(p))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().ok().flatten())
            .collect()
    });

    let mut out = Vec::new();
    for ((binary, path), version) in found.iter().zip(versions) {
        out.push(Check::error(
            binary_check_name(binary),
            decide::binary_existing(binary, path.is_some(), &searched),
        ));
        let Some(path) = path else {
            out.push(Check::error(
                version_check_name(binary),
                Outcome::Skipped(format!("{binary} not found")),
            ));
            continue;
        };
        let version = version.unwrap_or_else(|| {
            Err(VersionError::Unreadable {
                binary: path.clone(),
                why: String::new(),
            })
        });
        out.push(if *binary == "etcd" {
            decide::etcd_binary_version(path, version.as_ref(), &cfg.etcd_version)
        } else {
            decide::kube_binary_version(binary, path, version.as_ref(), &cfg.kubernetes_version)
        });
    }
    out
}
