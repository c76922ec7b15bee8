//! `boot init` → kubectl → `boot reset` against the real kube-apiserver, kube-controller-manager
//! and kube-scheduler (v1.36.2, unpacked by `../shared/k8s/unpack DIR`) with Debian's etcd, when
//! `BOOT_K8S_BIN` names their directory. Without it the test says loudly that it did not run; in
//! CI it fails instead when `../shared/k8s` exists (`.ci/run` then sets the variable).

use crate::cluster;

use std::time::Duration;

use cluster::{alive, kubectl, kubectl_until_ok, listening, text};

#[test]
fn init_runs_the_real_control_plane_and_reset_leaves_nothing() {
    let Some((cluster, kubectl_exe)) = cluster::real_cluster() else {
        return;
    };
    let before = cluster.tree();

    let init = cluster.boot(&["init"]);
    let output = text(&init);
    assert!(init.status.success(), "{output}");
    assert!(
        output.contains("v1.36.2"),
        "the version is detected: {output}"
    );
    assert!(
        output.contains("All control plane components are healthy"),
        "{output}"
    );

    let namespaces = kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &["get", "ns", "-o", "name"],
        Duration::from_secs(30),
    );
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            namespaces.contains(&format!("namespace/{ns}")),
            "{ns} missing: {namespaces}"
        );
    }
    // The service-account admission needs kube-system/default, which the controller manager
    // creates: a working dry run shows the API server, etcd and the controller manager at work.
    let created = kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &[
            "-n",
            "kube-system",
            "create",
            "configmap",
            "boot-e2e",
            "--from-literal=k=v",
            "--dry-run=server",
            "-o",
            "name",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(created.trim(), "configmap/boot-e2e");
    let pod = kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &[
            "-n",
            "kube-system",
            "run",
            "boot-e2e",
            "--image=registry.k8s.io/pause:3.10",
            "--dry-run=server",
            "-o",
            "jsonpath={.spec.serviceAccountName}",
        ],
        Duration::from_secs(90),
    );
    assert_eq!(
        pod.trim(),
        "default",
        "admitted with the default service account"
    );
    let absent = kubectl(
        &kubectl_exe,
        &cluster,
        &["-n", "kube-system", "get", "configmap", "boot-e2e"],
    );
    assert!(!absent.status.success(), "a dry run stores nothing");
    let readyz = kubectl(&kubectl_exe, &cluster, &["get", "--raw", "/readyz"]);
    assert_eq!(
        String::from_utf8_lossy(&readyz.stdout).trim(),
        "ok",
        "{}",
        text(&readyz)
    );
    let binding = kubectl(
        &kubectl_exe,
        &cluster,
        &[
            "get",
            "clusterrolebinding",
            "kubeadm:cluster-admins",
            "-o",
            "name",
        ],
    );
    assert!(binding.status.success(), "post-boot: {}", text(&binding));

    let status = cluster.boot(&["status", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    let mut pids: Vec<i32> = json["pods"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["containers"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["state"]["pid"].as_i64())
        .map(|p| p as i32)
        .collect();
    assert_eq!(pids.len(), 4, "four running components: {}", text(&status));
    pids.extend(json["agentPid"].as_i64().map(|p| p as i32));

    let reset = cluster.boot(&["reset", "--force"]);
    assert!(reset.status.success(), "{}", text(&reset));
    assert_eq!(cluster.tree(), before, "the root is exactly as before init");
    for pid in pids {
        assert!(!alive(pid), "process {pid} survived the reset");
    }
    for port in &cluster.ports {
        assert!(!listening(*port), "port {port} still listening");
    }
}
