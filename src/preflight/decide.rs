//! The preflight decisions, pure: each function takes what was read from the host and returns the
//! outcome with kubeadm's message (`cmd/kubeadm/app/preflight/checks.go`, `checks_linux.go`,
//! `checks_unix.go`). The reading happens in `plan` through a `HostProbe`.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use super::check::{version_check_name, Check, Outcome};
use crate::host::facts::VersionError;
use crate::version::Version;

/// `ControlPlaneNumCPU` (kubeadm `constants.go`).
pub const MIN_CPUS: usize = 2;
/// `ControlPlaneMem` in MB (kubeadm `constants.go`).
pub const MIN_MEMORY_MB: u64 = 1700;
/// The oldest etcd boot renders flags for (the 3.4 flag set; Debian ships 3.4.23).
pub const MIN_ETCD: (u64, u64) = (3, 4);

/// Where `boot init` records what it created; its presence means init already ran.
pub const LEDGER: &str = "/var/lib/boot/ledger.json";

pub fn privileged_user(uid: u32) -> Outcome {
    if uid == 0 {
        Outcome::Passed
    } else {
        Outcome::Failed("user is not running as root".into())
    }
}

pub fn num_cpu(cpus: usize) -> Outcome {
    if cpus >= MIN_CPUS {
        Outcome::Passed
    } else {
        Outcome::Failed(format!(
            "the number of available CPUs {cpus} is less than the required {MIN_CPUS}"
        ))
    }
}

/// kubeadm's `MemCheck`: sysinfo's total RAM in MiB (it divides by 1024 twice and calls it MB).
pub fn memory(total_bytes: io::Result<u64>) -> Outcome {
    match total_bytes {
        Err(err) => Outcome::Failed(format!("failed to get system info: {err}")),
        Ok(bytes) => {
            let mb = bytes / 1024 / 1024;
            if mb < MIN_MEMORY_MB {
                Outcome::Failed(format!(
                    "the system RAM ({mb} MB) is less than the minimum {MIN_MEMORY_MB} MB"
                ))
            } else {
                Outcome::Passed
            }
        }
    }
}

/// `/proc/swaps` with more than its header line means swap is on; unreadable means no swap to
/// warn about (kubeadm `SwapCheck`).
pub fn swap(proc_swaps: io::Result<String>) -> Outcome {
    match proc_swaps {
        Ok(text) if text.lines().count() > 1 => Outcome::Failed(
            "swap is supported for cgroup v2 only. The kubelet must be properly configured to use \
             swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, \
             or disable swap on the node"
                .into(),
        ),
        _ => Outcome::Passed,
    }
}

/// kubeadm's `FileContentCheck`: the file must start with `expected` (it reads exactly that many
/// bytes, so `1\n` passes).
pub fn file_content(host_path: &str, expected: &str, read: io::Result<String>) -> Outcome {
    match read {
        Ok(text) if text.starts_with(expected) => Outcome::Passed,
        Ok(_) => Outcome::Failed(format!("{host_path} contents are not set to {expected}")),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            Outcome::Failed(format!("{host_path} does not exist"))
        }
        Err(err) => Outcome::Failed(format!("{host_path} could not be read: {err}")),
    }
}

/// kubeadm's `FileAvailableCheck`: the file must not exist yet.
pub fn file_available(host_path: &Path, exists: bool) -> Outcome {
    if exists {
        Outcome::Failed(format!("{} already exists", host_path.display()))
    } else {
        Outcome::Passed
    }
}

/// kubeadm's `FileExistingCheck` (used for the external etcd client certificates).
pub fn file_existing(host_path: &Path, exists: bool) -> Outcome {
    if exists {
        Outcome::Passed
    } else {
        Outcome::Failed(format!("{} doesn't exist", host_path.display()))
    }
}

/// What is in a directory that must be absent or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirState {
    Missing,
    Empty,
    NotEmpty,
}

/// kubeadm's `DirAvailableCheck`: absent or empty.
pub fn dir_available(host_path: &Path, state: io::Result<DirState>) -> Outcome {
    match state {
        Ok(DirState::Missing | DirState::Empty) => Outcome::Passed,
        Ok(DirState::NotEmpty) => Outcome::Failed(format!("{} is not empty", host_path.display())),
        Err(err) => Outcome::Failed(format!(
            "unable to check if {} is empty: {err}",
            host_path.display()
        )),
    }
}

/// Whether `port` is free, from the attempts to bind it on each address. kubeadm only tries
/// `net.Listen("tcp", ":port")`; any failure there is "in use". On the other addresses (loopback,
/// the advertise address, the IPv6 wildcard) only `EADDRINUSE` counts: an address this host
/// does not have or an address family it lacks says nothing about the port.
pub fn port(port: u16, attempts: &[(IpAddr, io::Result<()>)]) -> Outcome {
    let in_use = attempts
        .iter()
        .any(|(_, r)| matches!(r, Err(e) if e.kind() == io::ErrorKind::AddrInUse));
    if in_use {
        return Outcome::Failed(format!("Port {port} is in use"));
    }
    let wildcard_error = attempts
        .iter()
        .find(|(ip, r)| *ip == IpAddr::from([0, 0, 0, 0]) && r.is_err());
    match wildcard_error {
        Some((ip, Err(err))) => Outcome::Failed(format!(
            "Port {port} is in use ({} could not be bound: {err})",
            SocketAddr::new(*ip, port)
        )),
        _ => Outcome::Passed,
    }
}

pub fn binary_existing(binary: &str, found: bool, searched: &str) -> Outcome {
    if found {
        Outcome::Passed
    } else {
        Outcome::Failed(format!("{binary} not found in {searched} or PATH"))
    }
}

/// A Kubernetes component binary must be the configured major.minor: its flags are rendered for
/// `kubernetesVersion`.
/// The component binary's minor must be `wanted`'s. A `--version` that ran out of time is a
/// warning (a slow or loaded host, not a wrong binary): the configured version is assumed.
pub fn kube_binary_version(
    name: &str,
    binary: &Path,
    found: Result<&Version, &VersionError>,
    wanted: &Version,
) -> Check {
    let check = version_check_name(name);
    match found {
        Err(timeout @ VersionError::TimedOut { .. }) => Check::warning(
            check,
            Outcome::Failed(format!(
                "{timeout} (a slow or loaded host?); assuming it is the configured v{wanted}"
            )),
        ),
        Err(unreadable) => Check::error(check, Outcome::Failed(unreadable.to_string())),
        Ok(v) if (v.major, v.minor) == (wanted.major, wanted.minor) => {
            Check::error(check, Outcome::Passed)
        }
        Ok(v) => Check::error(
            check,
            Outcome::Failed(format!(
                "{} is v{v} but kubernetesVersion is v{wanted}; install v{}.{} binaries or set \
                 kubernetesVersion to v{}.{}",
                binary.display(),
                wanted.major,
                wanted.minor,
                v.major,
                v.minor
            )),
        ),
    }
}

/// etcd older than [`MIN_ETCD`] is an error; another minor than the one the manifests were
/// rendered for is a warning (the flags may still be accepted).
pub fn etcd_binary_version(
    binary: &Path,
    found: Result<&Version, &VersionError>,
    rendered_for: &Version,
) -> Check {
    let name = version_check_name("etcd");
    let v = match found {
        Ok(v) => v,
        Err(timeout @ VersionError::TimedOut { .. }) => {
            return Check::warning(
                name,
                Outcome::Failed(format!(
                    "{timeout} (a slow or loaded host?); assuming etcd {rendered_for}"
                )),
            )
        }
        Err(unreadable) => return Check::error(name, Outcome::Failed(unreadable.to_string())),
    };
    if (v.major, v.minor) < MIN_ETCD {
        return Check::error(
            name,
            Outcome::Failed(format!(
                "{} is etcd {v}, older than {}.{}, the oldest etcd boot supports",
                binary.display(),
                MIN_ETCD.0,
                MIN_ETCD.1
            )),
        );
    }
    if (v.major, v.minor) != (rendered_for.major, rendered_for.minor) {
        return Check::warning(
            name,
            Outcome::Failed(format!(
                "{} is etcd {v} but the etcd manifest is rendered for etcd {rendered_for}; set \
                 BootConfiguration.etcdVersion to match the binary",
                binary.display()
            )),
        );
    }
    Check::warning(name, Outcome::Passed)
}

pub fn existing_installation(ledger_exists: bool) -> Outcome {
    if ledger_exists {
        Outcome::Failed(format!(
            "boot init already ran on this host (ledger {LEDGER}); run `boot reset` first"
        ))
    } else {
        Outcome::Passed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::check::Severity;

    fn failed(outcome: Outcome) -> String {
        match outcome {
            Outcome::Failed(m) => m,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    fn v(text: &str) -> Version {
        text.parse().unwrap()
    }

    #[test]
    fn root_cpu_and_memory_thresholds() {
        assert_eq!(privileged_user(0), Outcome::Passed);
        assert_eq!(failed(privileged_user(1000)), "user is not running as root");
        assert_eq!(num_cpu(2), Outcome::Passed);
        assert_eq!(
            failed(num_cpu(1)),
            "the number of available CPUs 1 is less than the required 2"
        );
        assert_eq!(memory(Ok(1700 * 1024 * 1024)), Outcome::Passed);
        assert_eq!(
            failed(memory(Ok(1699 * 1024 * 1024 + 1023))),
            "the system RAM (1699 MB) is less than the minimum 1700 MB"
        );
        assert!(failed(memory(Err(io::Error::other("boom")))).contains("boom"));
    }

    #[test]
    fn swap_warns_only_with_entries() {
        let header = "Filename\tType\tSize\tUsed\tPriority\n";
        assert_eq!(swap(Ok(header.into())), Outcome::Passed);
        assert_eq!(swap(Err(io::ErrorKind::NotFound.into())), Outcome::Passed);
        let on = format!("{header}/swapfile file 1024 0 -2\n");
        assert!(failed(swap(Ok(on))).starts_with("swap is supported for cgroup v2 only"));
    }

    #[test]
    fn file_content_compares_the_prefix_and_says_when_unreadable() {
        let p = "/proc/sys/net/ipv4/ip_forward";
        assert_eq!(file_content(p, "1", Ok("1\n".into())), Outcome::Passed);
        assert_eq!(
            failed(file_content(p, "1", Ok("0\n".into()))),
            "/proc/sys/net/ipv4/ip_forward contents are not set to 1"
        );
        assert_eq!(
            failed(file_content(p, "1", Err(io::ErrorKind::NotFound.into()))),
            "/proc/sys/net/ipv4/ip_forward does not exist"
        );
        let denied = failed(file_content(
            p,
            "1",
            Err(io::ErrorKind::PermissionDenied.into()),
        ));
        assert!(denied.starts_with("/proc/sys/net/ipv4/ip_forward could not be read"));
    }

    #[test]
    fn files_and_dirs() {
        let manifest = Path::new("/etc/kubernetes/manifests/etcd.yaml");
        assert_eq!(file_available(manifest, false), Outcome::Passed);
        assert_eq!(
            failed(file_available(manifest, true)),
            "/etc/kubernetes/manifests/etcd.yaml already exists"
        );
        let ca = Path::new("/etc/etcd/ca.crt");
        assert_eq!(file_existing(ca, true), Outcome::Passed);
        assert_eq!(
            failed(file_existing(ca, false)),
            "/etc/etcd/ca.crt doesn't exist"
        );
        let data = Path::new("/var/lib/etcd");
        assert_eq!(dir_available(data, Ok(DirState::Missing)), Outcome::Passed);
        assert_eq!(dir_available(data, Ok(DirState::Empty)), Outcome::Passed);
        assert_eq!(
            failed(dir_available(data, Ok(DirState::NotEmpty))),
            "/var/lib/etcd is not empty"
        );
        assert!(failed(dir_available(
            data,
            Err(io::ErrorKind::PermissionDenied.into())
        ))
        .starts_with("unable to check if /var/lib/etcd is empty"));
    }

    #[test]
    fn ports() {
        let any: IpAddr = [0, 0, 0, 0].into();
        let lo: IpAddr = [127, 0, 0, 1].into();
        let v6: IpAddr = "::".parse().unwrap();
        let in_use = || Err(io::ErrorKind::AddrInUse.into());
        let not_here = || Err(io::ErrorKind::AddrNotAvailable.into());
        assert_eq!(port(6443, &[(any, Ok(())), (lo, Ok(()))]), Outcome::Passed);
        assert_eq!(
            failed(port(6443, &[(any, Ok(())), (lo, in_use())])),
            "Port 6443 is in use"
        );
        // An address family or address the host lacks says nothing about the port.
        assert_eq!(
            port(6443, &[(any, Ok(())), (v6, not_here()), (lo, not_here())]),
            Outcome::Passed
        );
        // Any failure on the IPv4 wildcard is "in use", as kubeadm's net.Listen(":port").
        let denied = failed(port(
            80,
            &[(any, Err(io::ErrorKind::PermissionDenied.into()))],
        ));
        assert!(denied.starts_with("Port 80 is in use (0.0.0.0:80 could not be bound"));
    }

    #[test]
    fn binaries() {
        assert_eq!(binary_existing("etcd", true, "/usr/bin"), Outcome::Passed);
        assert_eq!(
            failed(binary_existing("etcd", false, "/opt/bin, /usr/bin")),
            "etcd not found in /opt/bin, /usr/bin or PATH"
        );
        let bin = Path::new("/opt/bin/kube-apiserver");
        let wanted = v("v1.34.2");
        let check = |found: Result<&Version, &VersionError>| {
            kube_binary_version("kube-apiserver", bin, found, &wanted)
        };
        assert_eq!(check(Ok(&v("v1.34.0"))).outcome, Outcome::Passed);
        let mismatch = check(Ok(&v("v1.31.0")));
        assert!(mismatch
            .failed()
            .unwrap()
            .starts_with("/opt/bin/kube-apiserver is v1.31.0 but kubernetesVersion is v1.34.2"));
        let unreadable = VersionError::Unreadable {
            binary: bin.into(),
            why: String::new(),
        };
        let unknown = check(Err(&unreadable));
        assert_eq!(unknown.severity, Severity::Error);
        assert!(unknown.failed().unwrap().contains("--version"));
        let slow = VersionError::TimedOut {
            binary: bin.into(),
            after: std::time::Duration::from_secs(30),
        };
        let slow = check(Err(&slow));
        assert_eq!(slow.severity, Severity::Warning);
        assert!(slow
            .failed()
            .unwrap()
            .contains("assuming it is the configured v1.34.2"));
    }

    #[test]
    fn etcd_versions() {
        let bin = Path::new("/usr/bin/etcd");
        let ok = etcd_binary_version(bin, Ok(&v("3.5.15")), &v("3.5.15-0"));
        assert_eq!(ok.outcome, Outcome::Passed);
        let old = etcd_binary_version(bin, Ok(&v("3.3.25")), &v("3.3.25"));
        assert_eq!(old.severity, Severity::Error);
        assert!(old.failed().unwrap().contains("older than 3.4"));
        let other = etcd_binary_version(bin, Ok(&v("3.4.23")), &v("3.6.5-0"));
        assert_eq!(other.severity, Severity::Warning);
        assert_eq!(other.name, "BinaryVersion-etcd");
        assert!(other
            .failed()
            .unwrap()
            .contains("rendered for etcd 3.6.5-0"));
        let unreadable = VersionError::Unreadable {
            binary: bin.into(),
            why: String::new(),
        };
        assert_eq!(
            etcd_binary_version(bin, Err(&unreadable), &v("3.5.0")).severity,
            Severity::Error
        );
    }

    #[test]
    fn ledger_means_init_already_ran() {
        assert_eq!(existing_installation(false), Outcome::Passed);
        assert_eq!(
            failed(existing_installation(true)),
            "boot init already ran on this host (ledger /var/lib/boot/ledger.json); run `boot reset` first"
        );
    }
}
