//! The node's files without an API server: `kubelet.conf` as kubeadm writes it (client certificate
//! `CN=system:node:<node>`, `O=system:nodes`, signed by the cluster CA, 0600), and the agent reading
//! `/var/lib/kubelet/config.yaml` as the kubelet reads `--config` (its `staticPodPath` decides the
//! watched directory).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use x509_parser::prelude::FromDer;

#[path = "common/wait.rs"]
mod wait;

const BOOT: &str = env!("CARGO_BIN_EXE_boot");

#[test]
fn kubelet_conf_is_the_nodes_identity() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.0.1\nnodeRegistration:\n  name: node-files\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\n",
    )
    .unwrap();
    let out_dir = dir.path().join("k");
    let out = Command::new(BOOT)
        .args(["manifests", "--pki", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = out_dir.join("kubelet.conf");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        kubeconfig["current-context"],
        "system:node:node-files@kubernetes"
    );
    assert_eq!(
        kubeconfig["clusters"][0]["cluster"]["server"],
        "https://127.0.0.1:6443"
    );
    let pem = base64::engine::general_purpose::STANDARD
        .decode(
            kubeconfig["users"][0]["user"]["client-certificate-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let der = pem::parse(&pem).unwrap().into_contents();
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(&der).unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    let o: Vec<_> = cert
        .subject()
        .iter_organization()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["system:node:node-files"]);
    assert_eq!(o, ["system:nodes"]);
    let ca_der = pem::parse(std::fs::read(out_dir.join("pki/ca.crt")).unwrap())
        .unwrap()
        .into_contents();
    let (_, ca) = x509_parser::certificate::X509Certificate::from_der(&ca_der).unwrap();
    cert.verify_signature(Some(ca.public_key())).unwrap();
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_agent_watches_the_static_pod_path_of_the_kubelet_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let moved = root.join("srv/static-pods");
    std::fs::create_dir_all(&moved).unwrap();
    let config = root.join("var/lib/kubelet/config.yaml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: {}\n",
            moved.display()
        ),
    )
    .unwrap();
    let _agent = Agent(
        Command::new(BOOT)
            .args([
                "agent",
                "--node-name",
                "n1",
                "--status-address",
                "none",
                "--root",
            ])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let status = wait_for_status(&root);
    assert_eq!(status["manifestDir"], moved.display().to_string());
    // No kubelet.conf: the agent runs without the API and says nothing about it.
    assert!(status.get("api").is_none());

    // A broken file is refused with the file named, before anything runs.
    std::fs::write(
        &config,
        "kind: KubeletConfiguration\nstaticPodPath: relative\n",
    )
    .unwrap();
    let out = Command::new(BOOT)
        .args([
            "agent",
            "--node-name",
            "n2",
            "--status-address",
            "none",
            "--root",
        ])
        .arg(dir.path().join("other"))
        .arg("--kubelet-config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config.yaml") && stderr.contains("staticPodPath"),
        "{stderr}"
    );
}

fn wait_for_status(root: &Path) -> serde_json::Value {
    wait::poll_until(
        Duration::from_secs(20),
        Duration::from_millis(100), // each poll runs `boot status`
        || {
            let out = Command::new(BOOT)
                .args(["status", "-o", "json", "--root"])
                .arg(root)
                .output()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .ok()
                .filter(|status| status["manifestDir"].is_string())
        },
        || "the agent never answered".to_string(),
    )
}
