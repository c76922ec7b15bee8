//! The preflight checks against this machine, in temporary roots: a port held by a listener, a
//! leftover manifest, a non-empty etcd data directory, a component binary of the wrong version and
//! missing binaries. Each test asserts on its own finding only: the machine may fail other checks
//! (e.g. `ip_forward` is 0 on CI hosts).

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

#[path = "common/ports.rs"]
mod ports;
#[path = "common/require.rs"]
mod require;
#[path = "common/wait.rs"]
mod wait;

use ports::free_port;

use boot::config::{self, Config, HostFacts, Overrides};
use boot::host::HostRoot;
use boot::preflight::{self, Finding, PreflightReport};

const COMPONENT_BINARIES: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// A temporary root with an empty binary directory, and the configuration that points at both.
struct Setup {
    root_dir: tempfile::TempDir,
    bin_dir: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let root_dir = tempfile::tempdir().unwrap();
        let bin_dir = root_dir.path().join("opt/bin");
        std::fs::create_dir_all(&bin_dir).unwrap();
        Setup { root_dir, bin_dir }
    }

    fn root(&self) -> HostRoot {
        HostRoot::under(self.root_dir.path()).unwrap()
    }

    fn config(&self, bind_port: u16) -> Config {
        let yaml = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\n\
             kind: InitConfiguration\n\
             localAPIEndpoint:\n  advertiseAddress: 127.0.0.1\n  bindPort: {bind_port}\n\
             ---\n\
             apiVersion: kubeadm.k8s.io/v1beta4\n\
             kind: ClusterConfiguration\n\
             kubernetesVersion: v1.34.2\n\
             ---\n\
             apiVersion: boot/v1alpha1\n\
             kind: BootConfiguration\n\
             runtime: process\n\
             binDirs: [{}]\n",
            self.bin_dir.display()
        );
        let docs = config::parse("preflight.yaml", &yaml).unwrap();
        let facts = HostFacts {
            hostname: "preflight-test".into(),
            default_address: Some([127, 0, 0, 1].into()),
            ..HostFacts::default()
        };
        Config::build(docs, &Overrides::default(), &facts).unwrap()
    }

    fn run(&self, bind_port: u16) -> PreflightReport {
        preflight::run(&self.config(bind_port), &self.root(), &[])
    }

    /// Writes an executable script into the binary directory and waits until it can be executed
    /// (a concurrent fork may briefly hold the written file open: ETXTBSY).
    fn fake_binary(&self, name: &str, script: &str) -> PathBuf {
        let path = self.bin_dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        wait::poll_until(
            Duration::from_secs(10),
            Duration::ZERO, // ETXTBSY lasts as long as a fork: retry at once
            || Command::new(&path).arg("--version").output().ok(),
            || format!("{} never ran", path.display()),
        );
        path
    }
}

fn error<'a>(report: &'a PreflightReport, name: &str) -> Option<&'a Finding> {
    report.errors.iter().find(|f| f.name == name)
}

#[test]
fn a_port_held_on_loopback_is_reported_and_points_at_reset() {
    let setup = Setup::new();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let report = setup.run(port);
    let name = format!("Port-{port}");
    let finding = error(&report, &name).unwrap_or_else(|| panic!("no {name} in:\n{report}"));
    assert_eq!(finding.message, format!("Port {port} is in use"));
    let text = report.to_string();
    assert!(text.contains(&format!("\t[ERROR {name}]: Port {port} is in use\n")));
    assert!(text.contains("run `boot reset`"), "{text}");

    drop(held);
    assert!(error(&setup.run(port), &name).is_none());
}

#[test]
fn a_leftover_manifest_and_etcd_data_are_reported_by_host_path() {
    let setup = Setup::new();
    let manifests = setup.root_dir.path().join("etc/kubernetes/manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    let port = free_port();
    let data_dir = setup.root_dir.path().join("var/lib/etcd");
    std::fs::create_dir_all(&data_dir).unwrap();
    let clean = setup.run(port);
    assert!(
        error(&clean, "DirAvailable--var-lib-etcd").is_none(),
        "{clean}"
    );
    assert!(clean
        .errors
        .iter()
        .all(|f| !f.name.starts_with("FileAvailable")));

    std::fs::write(manifests.join("kube-scheduler.yaml"), "").unwrap();
    std::fs::create_dir(data_dir.join("member")).unwrap();
    let report = setup.run(port);
    let manifest = error(
        &report,
        "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
    )
    .unwrap_or_else(|| panic!("{report}"));
    assert_eq!(
        manifest.message,
        "/etc/kubernetes/manifests/kube-scheduler.yaml already exists"
    );
    let data = error(&report, "DirAvailable--var-lib-etcd").unwrap();
    assert_eq!(data.message, "/var/lib/etcd is not empty");
}

#[test]
fn the_ledger_of_an_earlier_init_fails_preflight() {
    let setup = Setup::new();
    let ledger = setup.root_dir.path().join("var/lib/boot/ledger.json");
    std::fs::create_dir_all(ledger.parent().unwrap()).unwrap();
    std::fs::write(&ledger, "{}").unwrap();
    let report = setup.run(free_port());
    let finding = error(&report, "ExistingInstallation").unwrap();
    assert!(finding.message.contains("run `boot reset` first"));
}

#[test]
fn a_binary_of_another_minor_is_a_version_error() {
    let setup = Setup::new();
    let apiserver = setup.fake_binary("kube-apiserver", "echo 'Kubernetes v1.31.0'");
    setup.fake_binary("kube-scheduler", "echo 'Kubernetes v1.34.1'");
    let report = setup.run(free_port());
    assert!(error(&report, "FileExisting-kube-apiserver").is_none());
    let finding = error(&report, "BinaryVersion-kube-apiserver")
        .unwrap_or_else(|| panic!("no version error in:\n{report}"));
    assert!(
        finding.message.starts_with(&format!(
            "{} is v1.31.0 but kubernetesVersion is v1.34.2",
            apiserver.display()
        )),
        "{}",
        finding.message
    );
    assert!(error(&report, "BinaryVersion-kube-scheduler").is_none());
}

#[test]
fn every_missing_binary_is_listed_at_once() {
    let setup = Setup::new();
    let path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let on_path = |b: &str| boot::host::facts::find_binary(&path, b).is_some();
    let missing: Vec<&str> = COMPONENT_BINARIES
        .into_iter()
        .filter(|b| !on_path(b))
        .collect();
    // PATH is process-wide, so the test cannot hide binaries from a parallel test's preflight.
    if !require::prerequisite(
        "at least two component binaries absent from PATH",
        missing.len() >= 2,
    ) {
        return;
    }
    let report = setup.run(free_port());
    let reported: Vec<&str> = report
        .errors
        .iter()
        .filter_map(|f| f.name.strip_prefix("FileExisting-"))
        .collect();
    assert_eq!(reported, missing, "{report}");
    let searched = format!("not found in {} or PATH", setup.bin_dir.display());
    assert!(report.errors.iter().any(|f| f.message.ends_with(&searched)));
}

#[test]
fn ignoring_a_failure_turns_it_into_a_warning() {
    let setup = Setup::new();
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let name = format!("Port-{port}");
    let report = preflight::run(&setup.config(port), &setup.root(), &[name.to_uppercase()]);
    assert!(error(&report, &name).is_none());
    assert!(report.warnings.iter().any(|w| w.name == name));
    let all = preflight::run(&setup.config(port), &setup.root(), &["all".into()]);
    assert!(all.passed(), "{all}");
}
