//! `boot init` and `boot reset` end to end on temporary roots: the real binary, Debian's etcd and
//! the stand-in components (symlinked as kube-apiserver, kube-controller-manager, kube-scheduler).
//! Every test uses its own ports, and a guard resets (and, failing that, kills) what it started.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
#[path = "common/cluster.rs"]
mod cluster;

use cluster::{alive, have_etcd, listening, require, text, Cluster, BOOT, IGNORE};

#[test]
fn init_serves_kubectl_and_reset_leaves_nothing() {
    if !have_etcd() {
        return;
    }
    let cluster = Cluster::new("", "1m0s");
    let before = cluster.tree();
    let init = cluster.boot(&["init"]);
    assert!(init.status.success(), "{}", text(&init));
    assert!(
        text(&init).contains("All control plane components are healthy"),
        "{}",
        text(&init)
    );

    let status = cluster.boot(&["status", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let pids: Vec<i32> = json["pods"]
        .as_array()
        .map(|pods| {
            pods.iter()
                .flat_map(|p| p["containers"].as_array().cloned().unwrap_or_default())
                .filter_map(|c| c["state"]["pid"].as_i64())
                .map(|p| p as i32)
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(pids.len(), 4, "four running components: {}", text(&status));
    let agent_pid = json["agentPid"].as_i64().unwrap() as i32;

    // The status may still wait for readiness probes (initialDelaySeconds 10); wait for it.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !cluster.boot(&["status"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "boot status never reported all healthy"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    if let Some(kubectl) = require::tool("kubectl") {
        let admin = cluster.root().join("etc/kubernetes/admin.conf");
        let readyz = Command::new(kubectl)
            .arg("--kubeconfig")
            .arg(&admin)
            .args(["get", "--raw", "/readyz"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&readyz.stdout).trim(),
            "ok",
            "{}",
            text(&readyz)
        );
    }

    let reset = cluster.boot(&["reset", "--force"]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(cluster.tree(), before, "the root is exactly as before init");
    for pid in pids.iter().chain(std::iter::once(&agent_pid)) {
        assert!(!alive(*pid), "process {pid} survived the reset");
    }
    for port in &cluster.ports {
        assert!(!listening(*port), "port {port} still listening");
    }
    // A second reset is harmless.
    let again = cluster.boot(&["reset", "--force"]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(cluster.tree(), before);
}

#[test]
fn post_boot_binds_cluster_admins_and_uploads_the_configuration() {
    if !have_etcd() {
        return;
    }
    let cluster = Cluster::new("", "1m0s");
    let init = cluster.boot(&["init"]);
    assert!(init.status.success(), "{}", text(&init));
    let record =
        std::fs::read_to_string(cluster.dir.path().join("api-requests.jsonl")).unwrap_or_default();
    let requests: Vec<serde_json::Value> = record
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let binding = requests
        .iter()
        .find(|r| {
            r["method"] == "POST"
                && r["path"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_end_matches('?')
                    .ends_with("/clusterrolebindings")
        })
        .unwrap_or_else(|| panic!("no ClusterRoleBinding request in {record}"));
    let body: serde_json::Value = match &binding["body"] {
        serde_json::Value::String(s) => serde_json::from_str(s).unwrap(),
        other => other.clone(),
    };
    assert_eq!(body["metadata"]["name"], "kubeadm:cluster-admins");
    assert_eq!(body["roleRef"]["name"], "cluster-admin");
    assert_eq!(body["subjects"][0]["name"], "kubeadm:cluster-admins");
    let config_map = requests
        .iter()
        .find(|r| {
            r["path"]
                .as_str()
                .unwrap_or_default()
                .contains("/namespaces/kube-system/configmaps")
                && r["method"] != "GET"
        })
        .unwrap_or_else(|| panic!("no ConfigMap request in {record}"));
    assert_eq!(config_map["body"]["metadata"]["name"], "kubeadm-config");
    let uploaded = config_map["body"]["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap();
    let parsed = boot::config::parse("uploaded", uploaded).unwrap();
    assert_eq!(
        parsed.cluster.unwrap().kubernetes_version.as_deref(),
        Some("v1.34.2")
    );
    let output = text(&init);
    assert!(
        output.contains("[post-boot] Created ClusterRoleBinding kubeadm:cluster-admins"),
        "{output}"
    );
    // The phase on its own is idempotent: the binding exists, the ConfigMap is updated.
    let again = cluster.boot(&["init", "phase", "post-boot"]);
    let output = text(&again);
    assert!(again.status.success(), "{output}");
    assert!(output.contains("already exists"), "{output}");
    assert!(output.contains("(updated)"), "{output}");
}

#[test]
fn a_port_in_use_fails_preflight_and_writes_nothing() {
    let cluster = Cluster::new("", "1m0s");
    let api_port = cluster.ports[0];
    let _holder = TcpListener::bind(("127.0.0.1", api_port)).unwrap();
    let before = cluster.tree();
    let init = cluster.boot(&["init"]);
    assert!(!init.status.success());
    assert!(
        text(&init).contains(&format!("[ERROR Port-{api_port}]")),
        "{}",
        text(&init)
    );
    assert_eq!(init.status.code(), Some(3), "preflight exit code");
    assert_eq!(cluster.tree(), before, "nothing written");
}

#[test]
fn a_component_that_never_becomes_healthy_is_diagnosed_and_reset_cleans_up() {
    if !have_etcd() {
        return;
    }
    let cluster = Cluster::new("fail-readyz fail-livez fail-healthz", "6s");
    let before = cluster.tree();
    let start = Instant::now();
    let init = cluster.boot(&["init"]);
    let took = start.elapsed();
    let output = text(&init);
    assert!(!init.status.success(), "{output}");
    assert_eq!(init.status.code(), Some(5), "{output}");
    assert!(took < Duration::from_secs(30), "init took {took:?}");
    assert!(output.contains("kube-scheduler is not healthy"), "{output}");
    assert!(
        output.contains("HTTP probe failed with statuscode: 500"),
        "{output}"
    );
    let reset = cluster.boot(&["reset", "--force"]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(cluster.tree(), before);
}

#[test]
fn dry_runs_change_nothing() {
    let cluster = Cluster::new("", "1m0s");
    let before = cluster.tree();
    let init = cluster.boot(&["init", "--dry-run"]);
    assert!(init.status.success(), "{}", text(&init));
    assert!(
        text(&init).contains("etc/kubernetes/pki/ca.key"),
        "{}",
        text(&init)
    );
    let reset = cluster.boot(&["reset", "--dry-run"]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(cluster.tree(), before);
}

#[test]
fn reset_finishes_after_an_init_killed_halfway() {
    if !have_etcd() {
        return;
    }
    let cluster = Cluster::new("", "1m0s");
    let before = cluster.tree();
    let mut init = Command::new(BOOT)
        .args(["init", "--root"])
        .arg(cluster.root())
        .arg("--config")
        .arg(cluster.dir.path().join("config.yaml"))
        .arg(IGNORE)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the agent is up, while it waits for the control plane.
    let pid_file = cluster.root().join("run/boot/agent.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = init.kill();
    let _ = init.wait();
    assert!(pid_file.exists(), "init never started the agent");
    let reset = cluster.boot(&["reset", "--force"]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(cluster.tree(), before);
    // Running init twice: the second is refused by preflight until a reset.
    let first = cluster.boot(&["init"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = cluster.boot(&["init"]);
    assert!(!second.status.success());
    assert!(text(&second).contains("boot reset"), "{}", text(&second));
}
