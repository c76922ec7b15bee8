//! `boot manifests` as a user runs it: the real binary, temporary directories, and the real tools
//! (`kubectl`, `openssl`, Debian's `etcd` and `etcdctl`) checking what it wrote.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;

#[path = "common/ports.rs"]
mod ports;
#[path = "common/require.rs"]
mod require;
#[path = "common/wait.rs"]
mod wait;

use ports::free_port;

fn boot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boot"))
        .args(args)
        .output()
        .expect("boot runs")
}

/// `boot manifests --pki --config CONFIG --out OUT`.
fn manifests_pki(config: &Path, out: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_boot"))
        .args(["manifests", "--pki", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .output()
        .expect("boot runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("config.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

const BASE: &str = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.0.1\nnodeRegistration:\n  name: node-a\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n";

#[test]
fn kubeconfigs_are_accepted_by_kubectl_and_their_client_certs_verify() {
    let (Some(_), Some(_)) = (require::tool("kubectl"), require::tool("openssl")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), BASE);
    let out_dir = dir.path().join("k");
    let out = manifests_pki(&config, &out_dir);
    assert!(out.status.success(), "{}", stderr(&out));
    for (file, cn, org) in [
        (
            "admin.conf",
            "kubernetes-admin",
            Some("kubeadm:cluster-admins"),
        ),
        (
            "super-admin.conf",
            "kubernetes-super-admin",
            Some("system:masters"),
        ),
        (
            "controller-manager.conf",
            "system:kube-controller-manager",
            None,
        ),
        ("scheduler.conf", "system:kube-scheduler", None),
    ] {
        let path = out_dir.join(file);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600,
            "{file}"
        );
        let view = Command::new("kubectl")
            .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            view.status.success(),
            "kubectl rejects {file}: {}",
            stderr(&view)
        );
        let json: serde_json::Value = serde_json::from_slice(&view.stdout).unwrap();
        let server = json["clusters"][0]["cluster"]["server"].as_str().unwrap();
        assert_eq!(server, "https://127.0.0.1:6443", "{file}");
        assert_eq!(json["current-context"], format!("{cn}@kubernetes"));
        let cert_b64 = json["users"][0]["user"]["client-certificate-data"]
            .as_str()
            .unwrap();
        let cert = base64::engine::general_purpose::STANDARD
            .decode(cert_b64)
            .unwrap();
        let cert_path = dir.path().join(format!("{file}.crt"));
        std::fs::write(&cert_path, &cert).unwrap();
        let verify = Command::new("openssl")
            .arg("verify")
            .arg("-CAfile")
            .arg(out_dir.join("pki/ca.crt"))
            .arg(&cert_path)
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        let subject = Command::new("openssl")
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(&cert_path)
            .output()
            .unwrap();
        let subject = String::from_utf8_lossy(&subject.stdout).into_owned();
        assert!(subject.contains(&format!("CN={cn}")), "{file}: {subject}");
        assert_eq!(subject.contains("O="), org.is_some(), "{file}: {subject}");
        if let Some(org) = org {
            assert!(subject.contains(&format!("O={org}")), "{file}: {subject}");
        }
    }
    // A second run reuses everything and rewrites nothing.
    let before: Vec<_> = files_under(&out_dir)
        .iter()
        .map(|p| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let again = manifests_pki(&config, &out_dir);
    assert!(again.status.success(), "{}", stderr(&again));
    for (path, bytes) in before {
        if !path.starts_with(out_dir.join("manifests")) {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{} changed on the second run",
                path.display()
            );
        }
    }
}

/// Kills the process when dropped, so a failing test leaves no etcd behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn real_etcd_runs_from_the_rendered_manifest_with_the_generated_certificates() {
    let (Some(_), Some(_)) = (require::tool("etcd"), require::tool("etcdctl")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    // Free ports through extraArgs, so the test runs beside anything on 2379-2381; the command
    // run below is still exactly the manifest's.
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let config = format!(
        "{BASE}etcd:\n  local:\n    extraArgs:\n    - {{name: listen-client-urls, value: 'https://127.0.0.1:{client}'}}\n    - {{name: advertise-client-urls, value: 'https://127.0.0.1:{client}'}}\n    - {{name: listen-peer-urls, value: 'https://127.0.0.1:{peer}'}}\n    - {{name: initial-advertise-peer-urls, value: 'https://127.0.0.1:{peer}'}}\n    - {{name: initial-cluster, value: 'node-a=https://127.0.0.1:{peer}'}}\n    - {{name: listen-metrics-urls, value: 'http://127.0.0.1:{metrics}'}}\n---\napiVersion: boot/v1alpha1\nkind: BootConfiguration\n# Debian's etcd runs this manifest: render for the host binary.\nruntime: process\n"
    );
    let config = write_config(dir.path(), &config);
    let out = boot(&[
        "manifests",
        "--pki",
        "--config",
        config.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let manifest =
        std::fs::read_to_string(root.join("etc/kubernetes/manifests/etcd.yaml")).unwrap();
    let pod: k8s_openapi::api::core::v1::Pod = serde_yaml::from_str(&manifest).unwrap();
    let command = pod.spec.unwrap().containers[0].command.clone().unwrap();
    assert!(
        command.contains(&format!(
            "--data-dir={}",
            root.join("var/lib/etcd").display()
        )),
        "{command:?}"
    );
    let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
    let _etcd = KillOnDrop(
        Command::new(&command[0])
            .args(&command[1..])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let pki = root.join("etc/kubernetes/pki");
    let etcdctl = |cert: &str, args: &[&str]| {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{client}"))
            .arg(format!("--cacert={}", pki.join("etcd/ca.crt").display()))
            .arg(format!(
                "--cert={}",
                pki.join(format!("{cert}.crt")).display()
            ))
            .arg(format!(
                "--key={}",
                pki.join(format!("{cert}.key")).display()
            ))
            .arg("--dial-timeout=2s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let limit = Duration::from_secs(30);
    wait::poll_until(
        limit,
        Duration::from_millis(100), // each poll runs etcdctl
        || {
            etcdctl("etcd/healthcheck-client", &["endpoint", "health"])
                .status
                .success()
                .then_some(())
        },
        || format!("timed out after {limit:?} waiting for etcd health over mTLS"),
    );
    let put = etcdctl(
        "apiserver-etcd-client",
        &["put", "/registry/boot-test", "hello"],
    );
    assert!(put.status.success(), "{}", stderr(&put));
    let get = etcdctl(
        "apiserver-etcd-client",
        &["get", "--print-value-only", "/registry/boot-test"],
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "hello");
    // A client certificate from another CA is refused.
    let refused = etcdctl("front-proxy-client", &["endpoint", "health"]);
    assert!(!refused.status.success());
}

/// Runs boot on bad input and checks: non-zero exit, a one-line `error:` naming `needle`, nothing written.
fn assert_rejected(args: &[&str], out_dir: &Path, needle: &str) {
    let out = boot(args);
    let err = stderr(&out);
    assert!(!out.status.success(), "accepted: {args:?}");
    assert!(!err.contains("panicked"), "{err}");
    let headline = err.lines().next().unwrap_or_default();
    assert!(
        headline.starts_with("error: ") && headline.contains(needle),
        "headline {headline:?} lacks {needle:?}\n{err}"
    );
    assert!(
        files_under(out_dir).is_empty(),
        "{args:?} wrote {:?}",
        files_under(out_dir)
    );
}

#[test]
fn bad_input_is_one_clear_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let out = out_dir.to_str().unwrap();
    let cases: &[(&str, &str)] = &[
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking: [oops\n", "malformed YAML"),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworkin: {}\n", "unknown field `networkin`"),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: [1]\n", "InitConfiguration.localAPIEndpoint.bindPort"),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 10.0.0.300\n", "\"10.0.0.300\" is not a valid IP address"),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/33\n", ":4: ClusterConfiguration.networking.podSubnet: \"10.244.0.0/33\" is not a valid CIDR"),
        ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\netcd:\n  local: {}\n  external:\n    endpoints: [https://127.0.0.1:2379]\n", ":3: ClusterConfiguration.etcd: local and external are mutually exclusive"),
    ];
    for (index, (text, needle)) in cases.iter().enumerate() {
        let config = dir.path().join(format!("bad-{index}.yaml"));
        std::fs::write(&config, text).unwrap();
        assert_rejected(
            &[
                "manifests",
                "--pki",
                "--config",
                config.to_str().unwrap(),
                "--out",
                out,
            ],
            &out_dir,
            needle,
        );
    }
    assert_rejected(
        &[
            "manifests",
            "--config",
            "/nonexistent/boot.yaml",
            "--out",
            out,
        ],
        &out_dir,
        "cannot read the configuration /nonexistent/boot.yaml",
    );
    assert_rejected(
        &[
            "manifests",
            "--apiserver-advertise-address",
            "nope",
            "--out",
            out,
        ],
        &out_dir,
        "--apiserver-advertise-address",
    );

    // An output directory that cannot be written: a file stands where a directory must be.
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, "").unwrap();
    let result = boot(&[
        "manifests",
        "--pki",
        "--apiserver-advertise-address",
        "127.0.0.1",
        "--node-name",
        "n",
        "--out",
        blocked.join("k").to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    let headline = stderr(&result)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        headline.starts_with("error: ") && headline.contains("blocked/k"),
        "{headline}"
    );
    // A directory that exists but where one file cannot be placed fails before anything is written.
    let out_dir2 = dir.path().join("out2");
    std::fs::create_dir_all(out_dir2.join("manifests")).unwrap();
    std::fs::create_dir(out_dir2.join("manifests/etcd.yaml")).unwrap();
    let result = boot(&[
        "manifests",
        "--apiserver-advertise-address",
        "127.0.0.1",
        "--node-name",
        "n",
        "--out",
        out_dir2.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    assert!(
        stderr(&result).starts_with("error: cannot write"),
        "{}",
        stderr(&result)
    );
    assert!(
        files_under(&out_dir2).is_empty(),
        "{:?}",
        files_under(&out_dir2)
    );
}

#[test]
fn a_tampered_leaf_certificate_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), BASE);
    let first = dir.path().join("first");
    let out = manifests_pki(&config, &first);
    assert!(out.status.success(), "{}", stderr(&out));
    // Replace apiserver.crt with the one of a different, unrelated PKI.
    let other = dir.path().join("other");
    assert!(boot(&[
        "manifests",
        "--pki",
        "--config",
        config.to_str().unwrap(),
        "--out",
        other.to_str().unwrap()
    ])
    .status
    .success());
    std::fs::copy(
        other.join("pki/apiserver.crt"),
        first.join("pki/apiserver.crt"),
    )
    .unwrap();
    std::fs::remove_dir_all(first.join("manifests")).unwrap();
    let before = files_under(&first).len();
    let out = manifests_pki(&config, &first);
    assert!(!out.status.success());
    let headline = stderr(&out).lines().next().unwrap_or_default().to_string();
    assert!(
        headline.starts_with("error: ") && headline.contains("apiserver"),
        "{headline}"
    );
    assert_eq!(files_under(&first).len(), before, "files were written");
}

#[test]
fn every_example_configuration_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = boot(&["config", "validate", path.to_str().unwrap()]);
            assert!(out.status.success(), "{}: {}", path.display(), stderr(&out));
            seen += 1;
        }
    }
    assert!(seen >= 3, "expected the three examples");
}

#[test]
fn init_phases_write_the_real_layout_under_root() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), BASE);
    let root = dir.path().join("root");
    let run = |phase: &str| {
        boot(&[
            "init",
            "phase",
            phase,
            "--config",
            config.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ])
    };
    let early = run("kubeconfig");
    assert!(!early.status.success());
    assert!(
        stderr(&early).contains("pki/ca.crt does not exist"),
        "{}",
        stderr(&early)
    );
    assert!(
        stderr(&early).contains("hint: run `boot init phase certs` first"),
        "{}",
        stderr(&early)
    );
    for phase in ["certs", "kubeconfig", "etcd", "control-plane"] {
        let out = run(phase);
        assert!(out.status.success(), "{phase}: {}", stderr(&out));
    }
    let k8s = root.join("etc/kubernetes");
    for file in [
        "pki/ca.key",
        "pki/etcd/server.crt",
        "pki/sa.pub",
        "admin.conf",
        "scheduler.conf",
        "manifests/etcd.yaml",
        "manifests/kube-scheduler.yaml",
    ] {
        assert!(k8s.join(file).is_file(), "{file} missing");
    }
    assert_eq!(
        std::fs::metadata(k8s.join("manifests"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    let apiserver = std::fs::read_to_string(k8s.join("manifests/kube-apiserver.yaml")).unwrap();
    assert!(
        apiserver.contains(&format!(
            "--tls-cert-file={}/pki/apiserver.crt",
            k8s.display()
        )),
        "paths inside the files are rooted"
    );
}
