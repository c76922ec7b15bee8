//! `boot etcd snapshot` against the real control plane (`BOOT_K8S_BIN`, Debian's etcd 3.4): a
//! snapshot saved through the Maintenance API has the revision `etcdctl snapshot status` reads;
//! a corrupted copy is refused without touching anything; restoring the snapshot brings the
//! cluster back to it (a ConfigMap created after the snapshot is gone, one created before is
//! there) with the previous data kept, and the API server serving again.

use crate::cluster;

use std::path::Path;
use std::time::{Duration, Instant};

use cluster::{kubectl, kubectl_until_ok, require, text};

fn snapshots(cluster: &cluster::Cluster) -> Vec<serde_json::Value> {
    let out = cluster.boot(&["etcd", "snapshot", "ls", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_snapshot_round_trip_restores_the_cluster_and_a_corrupted_one_is_refused() {
    let Some(etcdctl) = require::tool("etcdctl") else {
        return;
    };
    let Some((cluster, kubectl_exe)) = cluster::real_cluster() else {
        return;
    };
    let init = cluster.boot(&["init"]);
    assert!(init.status.success(), "{}", text(&init));
    kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &["create", "configmap", "before", "--from-literal=v=1"],
        Duration::from_secs(60),
    );

    let save = cluster.boot(&["etcd", "snapshot", "save"]);
    assert!(save.status.success(), "{}", text(&save));
    let listed = snapshots(&cluster);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let path = listed[0]["path"].as_str().unwrap().to_string();
    assert_eq!(listed[0]["kind"], "on-demand");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let status = std::process::Command::new(&etcdctl)
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", &path, "-w", "json"])
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        listed[0]["revision"], status["revision"],
        "boot and etcdctl agree"
    );

    kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &["create", "configmap", "after", "--from-literal=v=2"],
        Duration::from_secs(30),
    );

    // A corrupted copy: refused before anything is touched.
    let corrupt = cluster.dir.path().join("corrupt.db");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&corrupt, bytes).unwrap();
    let manifests = cluster.root().join("etc/kubernetes/manifests");
    let before: Vec<_> = cluster::walk(&manifests).into_iter().collect();
    let refused = cluster.boot(&[
        "etcd",
        "snapshot",
        "restore",
        corrupt.to_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(refused.status.code(), Some(4), "{}", text(&refused));
    assert!(
        text(&refused).contains("SHA-256 does not match"),
        "{}",
        text(&refused)
    );
    assert_eq!(
        cluster::walk(&manifests).into_iter().collect::<Vec<_>>(),
        before
    );
    assert!(!cluster
        .root()
        .join("var/lib/boot/etcd-restore.json")
        .exists());
    kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &["get", "configmap", "after"],
        Duration::from_secs(10),
    );

    let started = Instant::now();
    let restore = cluster.boot(&["etcd", "snapshot", "restore", &path, "--yes"]);
    let took = started.elapsed();
    assert!(restore.status.success(), "{}", text(&restore));
    let out = text(&restore);
    assert!(
        out.contains("etcdctl snapshot restore"),
        "Debian's etcd 3.4 restores with etcdctl: {out}"
    );
    let kept: Vec<_> = std::fs::read_dir(cluster.root().join("var/lib"))
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("etcd.before-restore-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the previous data is kept");
    assert!(kept[0].path().join("member").is_dir());
    assert!(!cluster
        .root()
        .join("var/lib/boot/etcd-restore.json")
        .exists());

    kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &["get", "--raw", "/readyz"],
        Duration::from_secs(60),
    );
    kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &["get", "configmap", "before"],
        Duration::from_secs(30),
    );
    let gone = kubectl(&kubectl_exe, &cluster, &["get", "configmap", "after"]);
    assert!(
        !gone.status.success(),
        "the change after the snapshot is gone"
    );
    assert!(text(&gone).contains("NotFound"), "{}", text(&gone));
    // Writes work on the restored store.
    kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &["create", "configmap", "later", "--from-literal=v=3"],
        Duration::from_secs(30),
    );
    let status = cluster.boot(&["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(Path::new(&path).exists(), "the snapshot itself stays");
    eprintln!("MEASURED: restore (stop, restore, start, API ready) took {took:?}");
}
