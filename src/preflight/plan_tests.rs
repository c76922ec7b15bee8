//! Which checks apply to which configuration, against a fake host.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::*;
use crate::config::{self, HostFacts, Overrides};
use crate::host::facts::VersionError;
use crate::version::Version;

/// A host that answers from tables: a healthy control-plane node unless told otherwise.
struct FakeHost {
    uid: u32,
    cpus: usize,
    memory: u64,
    files: HashMap<PathBuf, String>,
    existing: HashSet<PathBuf>,
    dirs: HashMap<PathBuf, DirState>,
    busy: Vec<SocketAddr>,
    binaries: HashMap<String, Option<Version>>,
    /// Binaries whose `--version` runs out of time.
    slow: Vec<String>,
}

impl FakeHost {
    fn healthy() -> Self {
        let binaries = [
            ("etcd", "3.6.5"),
            ("kube-apiserver", "v1.36.2"),
            ("kube-controller-manager", "v1.36.2"),
            ("kube-scheduler", "v1.36.2"),
        ]
        .into_iter()
        .map(|(b, v)| (b.to_string(), Some(v.parse().unwrap())))
        .collect();
        FakeHost {
            uid: 0,
            cpus: 4,
            memory: 8 << 30,
            files: [
                ("/proc/sys/net/ipv4/ip_forward", "1\n"),
                ("/proc/sys/net/ipv6/conf/default/forwarding", "1\n"),
                ("/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n"),
            ]
            .into_iter()
            .map(|(p, c)| (PathBuf::from(p), c.to_string()))
            .collect(),
            existing: HashSet::new(),
            dirs: HashMap::new(),
            busy: vec![],
            binaries,
            slow: vec![],
        }
    }
}

impl HostProbe for FakeHost {
    fn uid(&self) -> u32 {
        self.uid
    }
    fn cpu_count(&self) -> usize {
        self.cpus
    }
    fn total_memory(&self) -> io::Result<u64> {
        Ok(self.memory)
    }
    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }
    fn exists(&self, path: &Path) -> bool {
        self.existing.contains(path)
    }
    fn dir_state(&self, path: &Path) -> io::Result<DirState> {
        Ok(*self.dirs.get(path).unwrap_or(&DirState::Missing))
    }
    fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        let conflict = self.busy.iter().any(|b| {
            b.port() == addr.port()
                && (b.ip() == addr.ip()
                    || addr.ip().is_unspecified() && b.is_ipv4() == addr.is_ipv4())
        });
        if conflict {
            Err(io::ErrorKind::AddrInUse.into())
        } else {
            Ok(())
        }
    }
    fn find_binary(&self, dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
        self.binaries.contains_key(name).then(|| dirs[0].join(name))
    }
    fn binary_version(&self, binary: &Path) -> Result<Version, VersionError> {
        let name = binary.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if self.slow.iter().any(|s| s == name) {
            return Err(VersionError::TimedOut {
                binary: binary.to_path_buf(),
                after: crate::host::facts::VERSION_TIMEOUT,
            });
        }
        self.binaries
            .get(name)
            .cloned()
            .flatten()
            .ok_or_else(|| VersionError::Unreadable {
                binary: binary.to_path_buf(),
                why: String::new(),
            })
    }
}

/// A configuration from `yaml` with fixed host facts (node `node`, default address 10.0.0.1).
pub(super) fn cfg(yaml: &str) -> Config {
    let docs = config::parse("test.yaml", yaml).unwrap();
    let facts = HostFacts {
        hostname: "node".into(),
        default_address: Some([10, 0, 0, 1].into()),
        ..HostFacts::default()
    };
    let mut config = Config::build(docs, &Overrides::default(), &facts).unwrap();
    // These tests check the host binaries, which only the process runtime runs.
    config.boot.runtime = config::RuntimeKind::Process;
    config
}

fn failures(checks: &[Check]) -> Vec<(&str, &str)> {
    checks
        .iter()
        .filter_map(|c| c.failed().map(|m| (c.name.as_str(), m)))
        .collect()
}

#[test]
fn a_healthy_host_passes_every_check_in_kubeadms_order() {
    let all = checks(&cfg(""), &HostRoot::system(), &FakeHost::healthy());
    assert_eq!(failures(&all), vec![]);
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ExistingInstallation",
            "IsPrivilegedUser",
            "NumCPU",
            "Mem",
            "Port-6443",
            "Port-10259",
            "Port-10257",
            "Port-2379",
            "Port-2380",
            "Port-2381",
            "Port-10248",
            "FileAvailable--etc-kubernetes-manifests-kube-apiserver.yaml",
            "FileAvailable--etc-kubernetes-manifests-kube-controller-manager.yaml",
            "FileAvailable--etc-kubernetes-manifests-kube-scheduler.yaml",
            "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
            "Swap",
            "FileExisting-etcd",
            "BinaryVersion-etcd",
            "FileExisting-kube-apiserver",
            "BinaryVersion-kube-apiserver",
            "FileExisting-kube-controller-manager",
            "BinaryVersion-kube-controller-manager",
            "FileExisting-kube-scheduler",
            "BinaryVersion-kube-scheduler",
            "FileContent--proc-sys-net-ipv4-ip_forward",
            "DirAvailable--var-lib-etcd",
        ]
    );
}

#[test]
fn the_oci_runtime_checks_no_host_binaries() {
    let mut config = cfg("");
    config.boot.runtime = config::RuntimeKind::Oci;
    let mut host = FakeHost::healthy();
    host.binaries.clear();
    let all = checks(&config, &HostRoot::system(), &host);
    assert_eq!(failures(&all), vec![]);
    assert!(
        all.iter()
            .all(|c| !c.name.starts_with("FileExisting") && !c.name.starts_with("BinaryVersion")),
        "{:?}",
        all.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
}

#[test]
fn root_is_required_only_on_the_system_root() {
    let host = FakeHost {
        uid: 1000,
        ..FakeHost::healthy()
    };
    let on_system = checks(&cfg(""), &HostRoot::system(), &host);
    assert_eq!(
        failures(&on_system),
        [("IsPrivilegedUser", "user is not running as root")]
    );
    let dir = tempfile::tempdir().unwrap();
    let rooted = checks(&cfg(""), &HostRoot::under(dir.path()).unwrap(), &host);
    assert_eq!(failures(&rooted), vec![]);
    let privileged = rooted.iter().find(|c| c.name == "IsPrivilegedUser");
    assert!(matches!(privileged.unwrap().outcome, Outcome::Skipped(_)));
}

#[test]
fn leftovers_are_found_under_the_root_but_named_by_host_path() {
    let root = HostRoot::under("/fake-root").unwrap();
    let mut host = FakeHost::healthy();
    host.existing
        .insert("/fake-root/etc/kubernetes/manifests/etcd.yaml".into());
    host.existing
        .insert("/fake-root/var/lib/boot/ledger.json".into());
    host.dirs
        .insert("/fake-root/var/lib/etcd".into(), DirState::NotEmpty);
    let found = checks(&cfg(""), &root, &host);
    assert_eq!(
        failures(&found),
        [
            (
                "ExistingInstallation",
                "boot init already ran on this host (ledger /var/lib/boot/ledger.json); run `boot reset` first"
            ),
            (
                "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
                "/etc/kubernetes/manifests/etcd.yaml already exists"
            ),
            ("DirAvailable--var-lib-etcd", "/var/lib/etcd is not empty"),
        ]
    );
}

#[test]
fn a_port_held_on_loopback_or_the_advertise_address_is_in_use() {
    let mut host = FakeHost::healthy();
    host.busy = vec![
        "127.0.0.1:10259".parse().unwrap(),
        "10.0.0.1:2380".parse().unwrap(),
    ];
    let found = checks(&cfg(""), &HostRoot::system(), &host);
    assert_eq!(
        failures(&found),
        [
            ("Port-10259", "Port 10259 is in use"),
            ("Port-2380", "Port 2380 is in use")
        ]
    );
}

#[test]
fn external_etcd_checks_its_certificates_and_skips_local_etcd() {
    let config = cfg(r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
etcd:
  external:
    endpoints: [https://10.0.0.2:2379]
    caFile: /etc/etcd/ca.crt
    certFile: /etc/etcd/client.crt
    keyFile: /etc/etcd/client.key
"#);
    let mut host = FakeHost::healthy();
    host.binaries.remove("etcd");
    host.existing.insert("/etc/etcd/ca.crt".into());
    let found = checks(&config, &HostRoot::system(), &host);
    assert_eq!(
        failures(&found),
        [
            (
                "ExternalEtcdClientCertificates",
                "/etc/etcd/client.crt doesn't exist"
            ),
            (
                "ExternalEtcdClientCertificates",
                "/etc/etcd/client.key doesn't exist"
            ),
        ]
    );
    assert!(!found.iter().any(|c| c.name.contains("etcd.yaml")
        || c.name.starts_with("DirAvailable")
        || c.name == "Port-2379"
        || c.name.ends_with("-etcd")));
}

#[test]
fn every_missing_binary_and_wrong_version_is_listed() {
    let mut host = FakeHost::healthy();
    host.binaries.remove("etcd");
    host.binaries.remove("kube-scheduler");
    host.binaries
        .insert("kube-apiserver".into(), Some("v1.31.0".parse().unwrap()));
    let found = checks(&cfg(""), &HostRoot::system(), &host);
    let failed: Vec<&str> = failures(&found).iter().map(|(n, _)| *n).collect();
    assert_eq!(
        failed,
        [
            "FileExisting-etcd",
            "BinaryVersion-kube-apiserver",
            "FileExisting-kube-scheduler"
        ]
    );
    let missing = failures(&found)[0].1;
    assert_eq!(
        missing,
        "etcd not found in /usr/local/bin, /usr/bin or PATH"
    );
}

#[test]
fn ipv6_clusters_check_ipv6_forwarding() {
    let config = cfg(r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: fd00::10
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  serviceSubnet: fd00:10::/108
"#);
    let mut host = FakeHost::healthy();
    host.files.insert(
        "/proc/sys/net/ipv6/conf/default/forwarding".into(),
        "0\n".into(),
    );
    let found = checks(&config, &HostRoot::system(), &host);
    assert_eq!(
        failures(&found),
        [(
            "FileContent--proc-sys-net-ipv6-conf-default-forwarding",
            "/proc/sys/net/ipv6/conf/default/forwarding contents are not set to 1"
        )]
    );
    assert!(!found.iter().any(|c| c.name.contains("ipv4")));
}

#[test]
fn static_pod_path_moves_the_manifest_checks() {
    let config = cfg(r#"
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
staticPodPath: /srv/manifests
"#);
    let found = checks(&config, &HostRoot::system(), &FakeHost::healthy());
    assert!(found
        .iter()
        .any(|c| c.name == "FileAvailable--srv-manifests-kube-apiserver.yaml"));
}

#[test]
fn run_joins_the_flag_with_the_configured_ignore_list() {
    let config = cfg(r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  ignorePreflightErrors: [numcpu]
"#);
    let host = FakeHost {
        cpus: 1,
        memory: 1 << 30,
        ..FakeHost::healthy()
    };
    let root = HostRoot::system();
    let report = run_with(&config, &root, &["MEM".to_string()], &host);
    assert!(report.passed(), "{report}");
    let warned: Vec<&str> = report.warnings.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(warned, ["NumCPU", "Mem"]);
    let strict = run_with(&config, &root, &[], &host);
    assert_eq!(strict.errors.len(), 1);
    assert_eq!(
        strict.to_string(),
        "\t[WARNING NumCPU]: the number of available CPUs 1 is less than the required 2\n\
         [preflight] Some fatal errors occurred:\n\
         \t[ERROR Mem]: the system RAM (1024 MB) is less than the minimum 1700 MB\n\
         [preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n"
    );
}

#[test]
fn unreadable_forwarding_file_is_reported() {
    let mut host = FakeHost::healthy();
    host.files
        .remove(Path::new("/proc/sys/net/ipv4/ip_forward"));
    let found = checks(&cfg(""), &HostRoot::system(), &host);
    assert_eq!(
        failures(&found),
        [(
            "FileContent--proc-sys-net-ipv4-ip_forward",
            "/proc/sys/net/ipv4/ip_forward does not exist"
        )]
    );
}

#[test]
fn a_version_that_times_out_is_a_warning_that_assumes_the_configured_one() {
    let mut host = FakeHost::healthy();
    host.slow = vec!["kube-apiserver".into(), "etcd".into()];
    let all = checks(&cfg(""), &HostRoot::system(), &host);
    for name in ["BinaryVersion-kube-apiserver", "BinaryVersion-etcd"] {
        let check = all.iter().find(|c| c.name == name).unwrap();
        assert_eq!(check.severity, Severity::Warning, "{check:?}");
        let message = check.failed().unwrap();
        assert!(
            message.contains("did not answer within 30s") && message.contains("assuming"),
            "{message}"
        );
    }
}
