//! `boot init` and `boot reset` end to end on temporary roots: the real binary, Debian's etcd and
//! the stand-in components (symlinked as kube-apiserver, kube-controller-manager, kube-scheduler).
//! Every test uses its own ports, and a guard resets (and, failing that, kills) what it started.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
#[path = "common/cluster.rs"]
mod cluster;

use cluster::{
    alive, have_etcd, listening, poll_until, require, text, wait_for, walk, Cluster, BOOT, IGNORE,
};

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
    poll_until(
        Duration::from_secs(40),
        Duration::from_millis(200), // each poll runs `boot status`
        || cluster.boot(&["status"]).status.success().then_some(()),
        || "boot status never reported all healthy".to_string(),
    );

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
        Some("v1.36.2")
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
    wait_for("init to start the agent", Duration::from_secs(30), || {
        pid_file.exists()
    });
    let _ = init.kill();
    let _ = init.wait();
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

/// Writes a ledger by hand, as a tampered or corrupt one would be.
fn write_ledger(root: &Path, ledger: &boot::host::ledger::Ledger) {
    let host_root = boot::host::HostRoot::under(root).unwrap();
    ledger.save(&host_root).unwrap();
}

#[test]
fn a_ledger_path_escaping_the_root_is_refused_and_nothing_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("precious"), "keep").unwrap();
    std::fs::create_dir_all(root.join("etc/kubernetes")).unwrap();
    std::fs::write(root.join("etc/kubernetes/admin.conf"), "x").unwrap();
    let mut ledger = boot::host::ledger::Ledger::default();
    ledger.files.insert(root.join("etc/kubernetes/admin.conf"));
    ledger.owned_trees.insert(root.join("../elsewhere"));
    write_ledger(&root, &ledger);
    let reset = Command::new(BOOT)
        .args(["reset", "--force", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let output = text(&reset);
    assert_eq!(reset.status.code(), Some(4), "{output}");
    assert!(output.contains("../elsewhere"), "{output}");
    assert!(elsewhere.join("precious").exists(), "{output}");
    assert!(
        root.join("etc/kubernetes/admin.conf").exists(),
        "validated before anything is removed"
    );
}

#[test]
fn a_failed_reset_keeps_its_ledger_and_never_follows_a_symlinked_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("kubernetes/manifests")).unwrap();
    std::fs::create_dir_all(&root).unwrap();
    // `<root>/etc` planted as a symlink to a directory outside the root.
    std::os::unix::fs::symlink(&outside, root.join("etc")).unwrap();
    let mut ledger = boot::host::ledger::Ledger::default();
    ledger.created_dirs.insert(root.join("etc"));
    ledger.created_dirs.insert(root.join("etc/kubernetes"));
    ledger
        .created_dirs
        .insert(root.join("etc/kubernetes/manifests"));
    for dir in ["var", "var/lib", "var/lib/boot"] {
        ledger.created_dirs.insert(root.join(dir));
    }
    write_ledger(&root, &ledger);
    let reset = |root: &Path| {
        Command::new(BOOT)
            .args(["reset", "--force", "--root"])
            .arg(root)
            .output()
            .unwrap()
    };
    let first = reset(&root);
    assert!(!first.status.success(), "{}", text(&first));
    assert!(
        outside.join("kubernetes/manifests").is_dir(),
        "an empty directory behind the symlink was removed: {}",
        text(&first)
    );
    assert!(
        root.join("var/lib/boot/ledger.json").exists(),
        "the ledger went although a step failed: {}",
        text(&first)
    );
    // Once the symlink is gone, the same ledger finishes the job.
    std::fs::remove_file(root.join("etc")).unwrap();
    std::fs::create_dir_all(root.join("etc/kubernetes/manifests")).unwrap();
    let second = reset(&root);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(walk(&root), BTreeSet::new(), "{}", text(&second));
    assert!(outside.join("kubernetes/manifests").is_dir());
}

#[test]
fn an_etcd_data_directory_in_use_is_not_boots_to_empty() {
    let cluster = Cluster::new("", "1m0s");
    let member = cluster.root().join("var/lib/etcd/member");
    std::fs::create_dir_all(&member).unwrap();
    std::fs::write(member.join("snap"), "someone's data").unwrap();
    let init = cluster.boot(&[
        "init",
        "--skip-phases=agent,wait-control-plane,post-boot,upload-certs,bootstrap-token",
        "--ignore-preflight-errors=all",
    ]);
    assert!(init.status.success(), "{}", text(&init));
    let reset = cluster.boot(&["reset", "--force"]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(
        std::fs::read_to_string(member.join("snap")).unwrap(),
        "someone's data"
    );
    assert!(!cluster.root().join("etc/kubernetes").exists());
}

#[test]
fn a_foreground_agent_starts_after_preflight_and_reset_stops_it() {
    let cluster = Cluster::new("", "1m0s");
    let before = cluster.tree();
    let init = Command::new(BOOT)
        .args(["init", "--agent=foreground", "--root"])
        .arg(cluster.root())
        .arg("--config")
        .arg(cluster.dir.path().join("config.yaml"))
        // Every check runs, none stops init (no etcd needed here): the agent's port must still
        // be free when preflight looks at it.
        .arg("--ignore-preflight-errors=all")
        // No control-plane pods: this is about the agent, preflight and the ledger.
        .arg("--skip-phases=etcd,control-plane,wait-control-plane,post-boot,upload-certs,bootstrap-token")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut init = Foreground(Some(init));
    let socket = cluster.root().join("run/boot/agent.sock");
    wait_for(
        "the foreground agent to start",
        Duration::from_secs(60),
        || {
            if let Some(status) = init.child().try_wait().unwrap() {
                let out = init.0.take().unwrap().wait_with_output().unwrap();
                panic!(
                    "init exited ({status}) before its agent ran: {}",
                    text(&out)
                );
            }
            socket.exists()
        },
    );
    let ledger = std::fs::read_to_string(cluster.root().join("var/lib/boot/ledger.json")).unwrap();
    assert!(
        ledger.contains(&cluster.root().join("run/boot").display().to_string()),
        "the agent's directories are recorded: {ledger}"
    );
    let reset = cluster.boot(&["reset", "--force"]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert!(
        text(&reset).contains("Stopped the agent"),
        "{}",
        text(&reset)
    );
    poll_until(
        Duration::from_secs(20),
        Duration::from_millis(50),
        || init.child().try_wait().unwrap(),
        || "boot init --agent=foreground still runs after reset".to_string(),
    );
    let out = init.0.take().unwrap().wait_with_output().unwrap();
    let status_port = cluster.ports[6];
    assert!(
        !text(&out).contains(&format!("Port-{status_port}]")),
        "the agent bound its port before preflight: {}",
        text(&out)
    );
    assert_eq!(cluster.tree(), before, "{}", text(&reset));
}

/// `boot init --agent=foreground`, killed on drop if the test did not end it.
struct Foreground(Option<std::process::Child>);

impl Foreground {
    fn child(&mut self) -> &mut std::process::Child {
        self.0.as_mut().unwrap()
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_failed_write_leaves_no_file_behind_exit_code_4() {
    let cluster = Cluster::new("", "1m0s");
    // The manifest directory's place is taken by a file: the manifests cannot be staged.
    std::fs::create_dir_all(cluster.root().join("etc/kubernetes")).unwrap();
    std::fs::write(
        cluster.root().join("etc/kubernetes/manifests"),
        "in the way",
    )
    .unwrap();
    let init = cluster.boot(&["init", "--ignore-preflight-errors=all"]);
    let output = text(&init);
    assert_eq!(init.status.code(), Some(4), "{output}");
    assert!(output.contains("manifests"), "{output}");
    let written: Vec<PathBuf> = cluster
        .tree()
        .into_iter()
        .filter(|p| p.is_file())
        .filter(|p| !p.ends_with("etc/kubernetes/manifests") && !p.ends_with("ledger.json"))
        .collect();
    assert_eq!(written, Vec::<PathBuf>::new(), "{output}");
    std::fs::remove_file(cluster.root().join("etc/kubernetes/manifests")).unwrap();
    let reset = cluster.boot(&["reset", "--force"]);
    assert!(reset.status.success(), "{}", text(&reset));
}
