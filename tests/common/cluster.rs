//! A `boot init` cluster on a temporary root for end-to-end tests: the real `boot` binary,
//! Debian's etcd, and either the stand-in components or the real ones (`BOOT_K8S_BIN`), on ports
//! of its own; dropping it runs `boot reset --force`. Include with
//! `#[path = "common/cluster.rs"] mod cluster;` (it brings `require`, `ports`, `standin_exe` and
//! `wait`).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

#[path = "ports.rs"]
pub mod ports;
#[path = "require.rs"]
pub mod require;
#[path = "standin_exe.rs"]
pub mod standin_exe;
// A test crate may include two support modules that both bring `wait`: two copies, no harm.
#[allow(clippy::duplicate_mod)]
#[path = "wait.rs"]
pub mod wait;
#[allow(unused_imports)] // each test crate uses a different part
pub use wait::{poll_until, wait_for};

pub const BOOT: &str = env!("CARGO_BIN_EXE_boot");
/// This host may not forward IPv4 and may have fewer CPUs than kubeadm wants; neither matters here.
pub const IGNORE: &str =
    "--ignore-preflight-errors=FileContent--proc-sys-net-ipv4-ip_forward,NumCPU,Mem";

/// Debian's etcd, which every end-to-end test runs (see `require`).
pub fn have_etcd() -> bool {
    require::file("/usr/bin/etcd").is_some()
}

/// Which kube-apiserver, kube-controller-manager and kube-scheduler the cluster runs.
pub enum Components<'a> {
    /// The stand-in, with these faults for the scheduler (`BOOT_STANDIN_FAULTS`).
    Standin { scheduler_faults: &'a str },
    /// The real binaries in this directory (`BOOT_K8S_BIN`).
    Real(&'a Path),
}

/// A temporary root with a bin directory, a configuration with free ports, and a guard.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ports: Vec<u16>,
}

impl Cluster {
    /// The stand-in components, the scheduler with `scheduler_faults`.
    pub fn new(scheduler_faults: &str, health_timeout: &str) -> Cluster {
        Cluster::with(Components::Standin { scheduler_faults }, health_timeout)
    }

    pub fn with(components: Components, health_timeout: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let (scheduler_faults, version) = match components {
            Components::Standin { scheduler_faults } => {
                (scheduler_faults, "kubernetesVersion: v1.36.2\n")
            }
            // The version is detected from the binary, as on a real host.
            Components::Real(_) => ("", ""),
        };
        for name in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            let target = match components {
                Components::Standin { .. } => standin_exe::standin_exe().to_path_buf(),
                Components::Real(dir) => dir.join(name),
            };
            std::os::unix::fs::symlink(target, bin.join(name)).unwrap();
        }
        std::os::unix::fs::symlink("/usr/bin/etcd", bin.join("etcd")).unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        let ports = ports::free_ports(8);
        let [api, client, peer, metrics, kcm, scheduler, status, kubelet] = ports[..] else {
            unreachable!()
        };
        let record = dir.path().join("api-requests.jsonl");
        let config = format!(
            r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
  bindPort: {api}
nodeRegistration:
  name: node-e2e
timeouts:
  controlPlaneComponentHealthCheck: {health_timeout}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
{version}encryptionAlgorithm: ECDSA-P256
etcd:
  local:
    extraArgs:
    - {{name: listen-client-urls, value: "https://127.0.0.1:{client}"}}
    - {{name: advertise-client-urls, value: "https://127.0.0.1:{client}"}}
    - {{name: listen-peer-urls, value: "https://127.0.0.1:{peer}"}}
    - {{name: initial-advertise-peer-urls, value: "https://127.0.0.1:{peer}"}}
    - {{name: initial-cluster, value: "node-e2e=https://127.0.0.1:{peer}"}}
    - {{name: listen-metrics-urls, value: "http://127.0.0.1:{metrics}"}}
apiServer:
  extraEnvs:
  - {{name: BOOT_STANDIN_RECORD, value: "{record}"}}
controllerManager:
  extraArgs:
  - {{name: secure-port, value: "{kcm}"}}
scheduler:
  extraArgs:
  - {{name: secure-port, value: "{scheduler}"}}
  extraEnvs:
  - {{name: BOOT_STANDIN_FAULTS, value: "{scheduler_faults}"}}
---
apiVersion: boot/v1alpha1
kind: BootConfiguration
runtime: process
binDirs: [{bin}]
agent:
  statusAddress: 127.0.0.1:{status}
  backoff: {{initial: 200ms, max: 1s}}
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: {kubelet}
"#,
            record = record.display(),
            bin = bin.display(),
        );
        std::fs::write(dir.path().join("config.yaml"), config).unwrap();
        Cluster { dir, ports }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Makes the config's leaves valid for `validity` (a Go duration) and due for renewal once
    /// less than `renew_before` is left, each in the document that owns the field.
    #[allow(dead_code)]
    pub fn short_lived_certificates(&self, validity: &str, renew_before: &str) {
        let path = self.dir.path().join("config.yaml");
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(
                "encryptionAlgorithm:",
                &format!("certificateValidityPeriod: {validity}\nencryptionAlgorithm:"),
            )
            .replace(
                "kind: BootConfiguration\n",
                &format!("kind: BootConfiguration\ncertificates:\n  renewBefore: {renew_before}\n"),
            );
        assert!(text.contains("renewBefore") && text.contains("certificateValidityPeriod"));
        std::fs::write(path, text).unwrap();
    }

    /// `etcdctl` against this cluster's etcd with the API server's client certificate; the caller
    /// adds the command.
    #[allow(dead_code)]
    pub fn etcdctl(&self, etcdctl: &Path) -> Command {
        let pki = self.root().join("etc/kubernetes/pki");
        let mut command = Command::new(etcdctl);
        command
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{}", self.ports[1]))
            .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
            .arg(format!(
                "--cert={}",
                pki.join("apiserver-etcd-client.crt").display()
            ))
            .arg(format!(
                "--key={}",
                pki.join("apiserver-etcd-client.key").display()
            ));
        command
    }

    /// The kubelet API's port (`KubeletConfiguration.port`, on 127.0.0.1).
    pub fn kubelet_port(&self) -> u16 {
        self.ports[7]
    }

    pub fn boot(&self, args: &[&str]) -> Output {
        let root = self.root();
        let mut command = Command::new(BOOT);
        command
            .args(args)
            .arg("--root")
            .arg(&root)
            .stdin(Stdio::null());
        if args.first() == Some(&"init") {
            command
                .arg("--config")
                .arg(self.dir.path().join("config.yaml"))
                .arg(IGNORE);
        }
        command.output().unwrap()
    }

    pub fn tree(&self) -> BTreeSet<PathBuf> {
        walk(&self.root())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.boot(&["reset", "--force"]);
    }
}

pub fn walk(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        out.insert(path.clone());
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            out.extend(walk(&path));
        }
    }
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false)
}

pub fn listening(port: u16) -> bool {
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                f.get(3) == Some(&"0A")
                    && f.get(1)
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| u16::from_str_radix(p, 16).ok())
                        == Some(port)
            })
    })
}

const BINARIES: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// A cluster of the real components (`BOOT_K8S_BIN`) and the path of kubectl; `None` (skipped,
/// or failed in CI) when either, or Debian's etcd, is missing.
#[allow(dead_code)]
pub fn real_cluster() -> Option<(Cluster, PathBuf)> {
    let components = real_components()?;
    let kubectl = require::tool("kubectl")?;
    if !have_etcd() {
        return None;
    }
    Some((
        Cluster::with(Components::Real(&components), "3m0s"),
        kubectl,
    ))
}

/// The directory of the real binaries, or `None` when the test is skipped (see
/// [`require::k8s_binaries`] for when it fails instead).
pub fn real_components() -> Option<PathBuf> {
    require::k8s_binaries(&BINARIES)
}

/// `kubectl --kubeconfig admin.conf ARGS`.
pub fn kubectl(kubectl: &Path, cluster: &Cluster, args: &[&str]) -> Output {
    Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(cluster.root().join("etc/kubernetes/admin.conf"))
        .args(["--request-timeout", "10s"])
        .args(args)
        .output()
        .unwrap()
}

/// Runs `kubectl ARGS` until it succeeds, or panics with its last output after `timeout`.
pub fn kubectl_until_ok(
    kubectl_exe: &Path,
    cluster: &Cluster,
    args: &[&str],
    timeout: Duration,
) -> String {
    let last = std::cell::RefCell::new(String::new());
    poll_until(
        timeout,
        Duration::from_millis(500),
        || {
            let out = kubectl(kubectl_exe, cluster, args);
            *last.borrow_mut() = text(&out);
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        },
        || format!("kubectl {} kept failing: {}", args.join(" "), last.borrow()),
    )
}
