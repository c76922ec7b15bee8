//! One preflight check as data: its kubeadm name (what `--ignore-preflight-errors` matches), how
//! bad a failure is, and what was found. Deciding the outcome is done by the pure functions of
//! `decide`; nothing here touches the host.

use std::path::Path;

/// How a failed check is reported (kubeadm's checks return warnings and errors separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Stops `boot init` unless the check is ignored.
    Error,
    /// Printed, never fatal.
    Warning,
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    /// The message kubeadm would print after `[ERROR Name]: ` / `[WARNING Name]: `.
    Failed(String),
    /// Not applicable here, with the reason (e.g. `IsPrivilegedUser` under `--root`).
    Skipped(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// kubeadm's exact name, e.g. `Port-6443` or `DirAvailable--var-lib-etcd`.
    pub name: String,
    pub severity: Severity,
    pub outcome: Outcome,
}

impl Check {
    pub fn error(name: impl Into<String>, outcome: Outcome) -> Self {
        Check {
            name: name.into(),
            severity: Severity::Error,
            outcome,
        }
    }

    pub fn warning(name: impl Into<String>, outcome: Outcome) -> Self {
        Check {
            name: name.into(),
            severity: Severity::Warning,
            outcome,
        }
    }

    pub fn failed(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Failed(message) => Some(message),
            _ => None,
        }
    }
}

/// kubeadm's name for a check about a path: `kind` + the path with every `/` replaced by `-`
/// (`FileAvailableCheck.Name`, `DirAvailableCheck.Name`, `FileContentCheck.Name`), so
/// `/var/lib/etcd` gives `DirAvailable--var-lib-etcd`. Always the un-rooted host path, so that
/// the names users pass to `--ignore-preflight-errors` are kubeadm's.
pub fn path_check_name(kind: &str, host_path: impl AsRef<Path>) -> String {
    format!(
        "{kind}-{}",
        host_path.as_ref().to_string_lossy().replace('/', "-")
    )
}

/// `Port-6443` (`PortOpenCheck.Name`).
pub fn port_check_name(port: u16) -> String {
    format!("Port-{port}")
}

/// `FileExisting-etcd` (`InPathCheck.Name`).
pub fn binary_check_name(binary: &str) -> String {
    path_check_name("FileExisting", binary)
}

/// `BinaryVersion-kube-apiserver`: boot's stand-in for kubeadm's `KubeletVersion` check, applied
/// to every component binary since boot runs them directly.
pub fn version_check_name(binary: &str) -> String {
    format!("BinaryVersion-{binary}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubeadm() {
        assert_eq!(
            path_check_name(
                "FileAvailable",
                "/etc/kubernetes/manifests/kube-apiserver.yaml"
            ),
            "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml"
        );
        assert_eq!(
            path_check_name("DirAvailable", "/var/lib/etcd"),
            "DirAvailable--var-lib-etcd"
        );
        assert_eq!(
            path_check_name("FileContent", "/proc/sys/net/ipv4/ip_forward"),
            "FileContent--proc-sys-net-ipv4-ip_forward"
        );
        assert_eq!(port_check_name(6443), "Port-6443");
        assert_eq!(binary_check_name("etcd"), "FileExisting-etcd");
        assert_eq!(
            version_check_name("kube-scheduler"),
            "BinaryVersion-kube-scheduler"
        );
    }

    #[test]
    fn failed_returns_the_message_only_on_failure() {
        assert_eq!(
            Check::error("X", Outcome::Failed("m".into())).failed(),
            Some("m")
        );
        assert_eq!(Check::error("X", Outcome::Passed).failed(), None);
        assert_eq!(
            Check::warning("X", Outcome::Skipped("why".into())).failed(),
            None
        );
    }
}
