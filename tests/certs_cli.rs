//! `boot certs check-expiration` and `boot certs renew` as a user runs them: the real binary on a
//! temporary root whose PKI, kubeconfigs and manifests `boot init phase …` wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;

#[path = "common/require.rs"]
mod require;
use x509_parser::prelude::{FromDer, X509Certificate};

const CONFIG: &str = "\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration: {name: node-a}
localAPIEndpoint: {advertiseAddress: 127.0.0.1}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.36.2
encryptionAlgorithm: ECDSA-P256
---
apiVersion: boot/v1alpha1
kind: BootConfiguration
etcdVersion: 3.5.21
";

struct Cluster {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
}

impl Cluster {
    /// certs, kubeconfig and control-plane phases under a fresh root.
    fn new(extra_config: &str) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let config = dir.path().join("config.yaml");
        std::fs::write(&config, format!("{CONFIG}{extra_config}")).unwrap();
        let cluster = Cluster {
            _dir: dir,
            root,
            config,
        };
        for phase in ["certs", "kubeconfig", "etcd", "control-plane"] {
            let out = cluster.boot(&["init", "phase", phase]);
            assert!(out.status.success(), "phase {phase}: {}", text(&out.stderr));
        }
        cluster
    }

    fn boot(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_boot"))
            .arg("--root")
            .arg(&self.root)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .output()
            .expect("boot runs")
    }

    fn path(&self, host_path: &str) -> PathBuf {
        self.root.join(host_path.trim_start_matches('/'))
    }

    fn pki(&self, file: &str) -> PathBuf {
        self.path(&format!("/etc/kubernetes/pki/{file}"))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// (serial, not_after, public key) of a PEM certificate.
fn cert_of_pem(pem_bytes: &[u8]) -> (Vec<u8>, i64, Vec<u8>) {
    let block = pem::parse(pem_bytes).unwrap();
    let (_, cert) = X509Certificate::from_der(block.contents()).unwrap();
    (
        cert.raw_serial().to_vec(),
        cert.validity().not_after.timestamp(),
        cert.public_key().subject_public_key.data.to_vec(),
    )
}

fn cert_of(path: &Path) -> (Vec<u8>, i64, Vec<u8>) {
    cert_of_pem(&std::fs::read(path).unwrap())
}

fn kubeconfig_cert(path: &Path) -> (Vec<u8>, i64, Vec<u8>) {
    let doc: serde_yaml::Value = serde_yaml::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let data = doc["users"][0]["user"]["client-certificate-data"]
        .as_str()
        .unwrap();
    cert_of_pem(
        &base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap(),
    )
}

/// `openssl` says whether the certificate and the key at these paths belong together.
fn openssl_pair_matches(openssl: &Path, cert: &Path, key: &Path) -> bool {
    let public = |args: &[&str], path: &Path| {
        let out = Command::new(openssl).args(args).arg(path).output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        out.stdout
    };
    public(&["x509", "-noout", "-pubkey", "-in"], cert) == public(&["pkey", "-pubout", "-in"], key)
}

const ALL: [&str; 11] = [
    "admin.conf",
    "apiserver",
    "apiserver-etcd-client",
    "apiserver-kubelet-client",
    "controller-manager.conf",
    "etcd-healthcheck-client",
    "etcd-peer",
    "etcd-server",
    "front-proxy-client",
    "scheduler.conf",
    "super-admin.conf",
];

#[test]
fn check_expiration_lists_kubeadms_names_and_cas() {
    let cluster = Cluster::new("");
    let out = cluster.boot(&["certs", "check-expiration"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ALL, "{table}");
    assert!(table.contains("CERTIFICATE AUTHORITY   EXPIRES"), "{table}");
    for ca in ["ca ", "etcd-ca ", "front-proxy-ca "] {
        assert!(table.lines().any(|l| l.starts_with(ca)), "{ca}: {table}");
    }
    // NotAfter is now + 8760h: a year, or 364 days once a second has passed.
    let apiserver = table.lines().find(|l| l.starts_with("apiserver ")).unwrap();
    assert!(
        apiserver.contains(" 1y ") || apiserver.contains(" 364d "),
        "a fresh leaf has a year left: {table}"
    );

    let json = cluster.boot(&["certs", "check-expiration", "-o", "json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["certificates"].as_array().unwrap().len(), 11);
    assert_eq!(
        report["certificateAuthorities"].as_array().unwrap().len(),
        3
    );
    assert_eq!(report["certificates"][1]["authority"], "ca");
}

#[test]
fn renew_replaces_only_the_named_certificates_with_new_keys() {
    let cluster = Cluster::new("");
    let apiserver = cluster.pki("apiserver.crt");
    let admin = cluster.path("/etc/kubernetes/admin.conf");
    let untouched = cluster.pki("etcd/server.crt");
    let (old_serial, _, old_key) = cert_of(&apiserver);
    let (old_admin_serial, _, _) = kubeconfig_cert(&admin);
    let etcd_before = std::fs::read(&untouched).unwrap();

    let out = cluster.boot(&["certs", "renew", "apiserver", "admin.conf", "--no-restart"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("[renew] certificate apiserver (apiserver.crt) renewed"),
        "{stdout}"
    );
    assert!(stdout.contains("Done renewing certificates."), "{stdout}");

    let (serial, _, key) = cert_of(&apiserver);
    assert_ne!(serial, old_serial);
    assert_ne!(key, old_key, "a new key");
    if let Some(openssl) = require::tool("openssl") {
        let key_path = cluster.pki("apiserver.key");
        assert!(
            openssl_pair_matches(&openssl, &apiserver, &key_path),
            "cert and key match"
        );
    }
    assert_ne!(kubeconfig_cert(&admin).0, old_admin_serial);
    assert_eq!(std::fs::read(&untouched).unwrap(), etcd_before);

    // kubectl still reads the renewed kubeconfig: its embedded pair matches.
    let check = cluster.boot(&["certs", "check-expiration"]);
    assert!(check.status.success(), "{}", text(&check.stderr));
}

#[test]
fn renew_all_and_the_renewal_window_decide_the_exit_code() {
    // Renewed with a 1h validity, checked with a 2h window: every leaf is due.
    let cluster = Cluster::new("certificates:\n  renewBefore: 2h\n");
    let out = cluster.boot(&["certs", "check-expiration"]);
    assert!(
        out.status.success(),
        "a year left is not due: {}",
        text(&out.stderr)
    );

    let short = cluster.config.with_file_name("short.yaml");
    let config = std::fs::read_to_string(&cluster.config).unwrap().replace(
        "encryptionAlgorithm:",
        "certificateValidityPeriod: 1h\nencryptionAlgorithm:",
    );
    let renew_with = |config: &str| {
        std::fs::write(&short, config).unwrap();
        Command::new(env!("CARGO_BIN_EXE_boot"))
            .arg("--root")
            .arg(&cluster.root)
            .arg("--config")
            .arg(&short)
            .args(["certs", "renew", "all", "--no-restart"])
            .output()
            .unwrap()
    };
    // A window as long as the validity would renew forever: refused, naming the field.
    let refused = renew_with(&config);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        text(&refused.stderr).contains("BootConfiguration.certificates.renewBefore"),
        "{}",
        text(&refused.stderr)
    );
    let renew = renew_with(&config.replace("certificates:\n  renewBefore: 2h\n", ""));
    assert!(renew.status.success(), "{}", text(&renew.stderr));
    assert_eq!(
        text(&renew.stdout)
            .matches(" renewed, valid until ")
            .count(),
        11
    );
    let (_, not_after, _) = cert_of(&cluster.pki("front-proxy-client.crt"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (not_after - now - 3600).abs() < 120,
        "1h validity: {}",
        not_after - now
    );

    let due = cluster.boot(&["certs", "check-expiration"]);
    assert_eq!(due.status.code(), Some(1), "{}", text(&due.stdout));
    assert!(text(&due.stderr).contains("due for renewal or expired: admin.conf"));
}

#[test]
fn external_ca_mode_refuses_to_renew_and_shows_externally_managed() {
    let cluster = Cluster::new("");
    std::fs::remove_file(cluster.pki("ca.key")).unwrap();
    let before = std::fs::read(cluster.pki("apiserver.crt")).unwrap();
    let out = cluster.boot(&["certs", "renew", "apiserver", "--no-restart"]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains("certificate apiserver cannot be renewed"),
        "{err}"
    );
    assert!(err.contains("external CA"), "{err}");
    assert_eq!(std::fs::read(cluster.pki("apiserver.crt")).unwrap(), before);

    let table = text(&cluster.boot(&["certs", "check-expiration"]).stdout);
    let apiserver = table.lines().find(|l| l.starts_with("apiserver ")).unwrap();
    assert!(apiserver.ends_with("yes"), "{table}");
    let etcd = table
        .lines()
        .find(|l| l.starts_with("etcd-server "))
        .unwrap();
    assert!(etcd.ends_with("no"), "etcd-ca still has its key: {table}");
}

#[test]
fn an_unknown_name_is_refused_with_the_known_ones() {
    let cluster = Cluster::new("");
    let out = cluster.boot(&["certs", "renew", "apiserverr"]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(err.contains("unknown certificate \"apiserverr\""), "{err}");
    assert!(err.contains("apiserver-etcd-client"), "{err}");
}

#[test]
fn without_an_agent_renew_marks_only_the_manifests_that_use_the_files() {
    let cluster = Cluster::new("");
    let out = cluster.boot(&["certs", "renew", "apiserver", "scheduler.conf"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("the agent is not running"), "{stdout}");
    let manifest = |name: &str| {
        std::fs::read_to_string(cluster.path(&format!("/etc/kubernetes/manifests/{name}.yaml")))
            .unwrap()
    };
    assert!(manifest("kube-apiserver").contains("boot/certificates-renewed-at"));
    assert!(manifest("kube-scheduler").contains("boot/certificates-renewed-at"));
    assert!(!manifest("etcd").contains("boot/certificates-renewed-at"));
    assert!(!manifest("kube-controller-manager").contains("boot/certificates-renewed-at"));
}
