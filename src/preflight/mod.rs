//! `boot init`'s preflight phase: the applicable checks of kubeadm's `InitNodeChecks` (reference
//! §6) with kubeadm's names, severities, messages and output, plus boot's own
//! (`ExistingInstallation`, `BinaryVersion-*`, the etcd metrics and agent ports). Runs before
//! anything is written; every failure is listed at once.
//!
//! Host paths read (through the `--root` prefix): the static pod manifests, the etcd data
//! directory, the external etcd client certificates, `/var/lib/boot/ledger.json`; binaries in
//! `BootConfiguration.binDirs`, then `PATH`. From the real kernel: `/proc/sys/net/ipv4/ip_forward`
//! (or IPv6 `forwarding`), `/proc/swaps`, uid, CPUs, RAM, and the ports (bound, never listened on).
//!
//! Layout: `check` (a check as data, its name), `decide` (pure decisions), `ports` (the ports the
//! configuration listens on), `probe` (reading the host, injectable), `plan` (which checks apply,
//! wiring probe to decisions), `report` (ignore list and kubeadm's output).

mod check;
mod decide;
mod plan;
#[cfg(test)]
mod plan_tests;
mod ports;
mod probe;
mod report;

pub use check::{
    binary_check_name, path_check_name, port_check_name, version_check_name, Check, Outcome,
    Severity,
};
pub use decide::{DirState, LEDGER, MIN_CPUS, MIN_ETCD, MIN_MEMORY_MB};
pub use plan::checks;
pub use ports::{component_ports, url_ports};
pub use probe::{HostProbe, SystemProbe};
pub use report::{Finding, IgnoreList, IgnoreListError, PreflightReport};

use crate::config::Config;
use crate::host::HostRoot;

/// Runs every applicable check against this host. `ignored` is `--ignore-preflight-errors`; it is
/// joined with `nodeRegistration.ignorePreflightErrors` (call [`IgnoreList::validate`] first to
/// refuse `all` mixed with names, as kubeadm does).
pub fn run(cfg: &Config, root: &HostRoot, ignored: &[String]) -> PreflightReport {
    run_with(cfg, root, ignored, &SystemProbe)
}

/// [`run`] for a control-plane join that downloads the shared certificates: as kubeadm's
/// `InitNodeChecks` (`!(isSecondaryControlPlane && downloadCerts)`), the external etcd client
/// files are not required beforehand; the join writes them from `kubeadm-certs`.
pub fn run_for_join(cfg: &Config, root: &HostRoot, ignored: &[String]) -> PreflightReport {
    let ignore = IgnoreList::new(ignored, &cfg.init.node_registration.ignore_preflight_errors);
    let checks: Vec<Check> = checks(cfg, root, &SystemProbe)
        .into_iter()
        .filter(|c| c.name != EXTERNAL_ETCD_FILES)
        .collect();
    PreflightReport::evaluate(&checks, &ignore)
}

/// kubeadm's label of the external etcd client file checks.
pub(crate) const EXTERNAL_ETCD_FILES: &str = "ExternalEtcdClientCertificates";

/// [`run`] with another view of the host (tests).
pub fn run_with(
    cfg: &Config,
    root: &HostRoot,
    ignored: &[String],
    probe: &dyn HostProbe,
) -> PreflightReport {
    let ignore = IgnoreList::new(ignored, &cfg.init.node_registration.ignore_preflight_errors);
    PreflightReport::evaluate(&checks(cfg, root, probe), &ignore)
}
