//! The real etcd manifest from `boot manifests --pki` runs under the agent (Debian's etcd 3.4, so
//! its probes are `/health`) and becomes ready through its probes.

#[path = "common/agent_support.rs"]
mod agent_support;
#[path = "common/require.rs"]
mod require;

use std::process::Command;
use std::time::Duration;

use agent_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_etcd_manifest_runs_and_becomes_ready_through_its_probes() {
    if require::file("/usr/bin/etcd").is_none() {
        return;
    }
    let mut agent = TestAgent::new(|o| o.node_name = "node-a".into());
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let config = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  advertiseAddress: 127.0.0.1\nnodeRegistration:\n  name: node-a\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nencryptionAlgorithm: ECDSA-P256\netcd:\n  local:\n    extraArgs:\n    - {{name: listen-client-urls, value: 'https://127.0.0.1:{client}'}}\n    - {{name: advertise-client-urls, value: 'https://127.0.0.1:{client}'}}\n    - {{name: listen-peer-urls, value: 'https://127.0.0.1:{peer}'}}\n    - {{name: initial-advertise-peer-urls, value: 'https://127.0.0.1:{peer}'}}\n    - {{name: initial-cluster, value: 'node-a=https://127.0.0.1:{peer}'}}\n    - {{name: listen-metrics-urls, value: 'http://127.0.0.1:{metrics}'}}\n---\napiVersion: boot/v1alpha1\nkind: BootConfiguration\n# Debian's etcd runs this manifest: render for the host binary.\nruntime: process\n"
    );
    let config_path = agent.path("config.yaml");
    std::fs::write(&config_path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_boot"))
        .args(["manifests", "--pki", "--config"])
        .arg(&config_path)
        .arg("--root")
        .arg(agent.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifests = agent.options.manifest_dir.clone();
    let etcd = std::fs::read_to_string(manifests.join("etcd.yaml")).unwrap();
    assert!(
        etcd.contains("/health"),
        "etcd 3.4 is probed on /health:\n{etcd}"
    );
    for other in [
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ] {
        let _ = std::fs::remove_file(manifests.join(other));
    }
    agent.start().await;
    // kubeadm's startup probe waits 10 s before its first run; readiness is gated behind it.
    let pid = agent.wait_ready("etcd", Duration::from_secs(60)).await;
    let status = agent.status();
    let pod = status.pod("etcd-node-a").unwrap();
    assert!(
        pod.containers[0]
            .probes
            .iter()
            .all(|p| p.result == "success"),
        "{pod:?}"
    );
    assert_eq!(
        processes_with(&format!("--listen-metrics-urls=http://127.0.0.1:{metrics}")),
        vec![pid]
    );
    assert!(
        agent.root.path("/var/lib/etcd/member").exists(),
        "etcd's data directory is under the root"
    );
}
