//! `boot secrets rotate-key` against the real control plane (`BOOT_K8S_BIN`, as
//! tests/clusters/certs_real.rs): Secrets created with boot's first key end up, after a rotation, all
//! encrypted with the new key in etcd (read raw with `etcdctl`), the old key is gone from the
//! file, and kubectl still reads every value. A rotation by restarts, on a second cluster, is
//! killed half-way and finished by running the command again.

use crate::cluster;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use cluster::{kubectl_until_ok, require, text, Cluster, BOOT};

const SECRETS: usize = 30;

/// Every raw value under `/registry/secrets/`, as etcd holds it.
fn etcd_secret_values(etcdctl: &Path, cluster: &Cluster) -> Vec<(String, Vec<u8>)> {
    let out = cluster
        .etcdctl(etcdctl)
        .args(["get", "/registry/secrets/", "--prefix", "-w", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b64 = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    json["kvs"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|kv| {
            (
                String::from_utf8(b64(&kv["key"])).unwrap(),
                b64(&kv["value"]),
            )
        })
        .collect()
}

fn assert_all_encrypted_with(etcdctl: &Path, cluster: &Cluster, key: &str) {
    let values = etcd_secret_values(etcdctl, cluster);
    assert!(values.len() >= SECRETS, "{} secrets in etcd", values.len());
    let prefix = format!("k8s:enc:secretbox:v1:{key}:");
    let others: Vec<String> = values
        .iter()
        .filter(|(_, v)| !v.starts_with(prefix.as_bytes()))
        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(&v[..v.len().min(30)])))
        .collect();
    assert!(others.is_empty(), "not with {key}: {others:?}");
}

/// The key names in the encryption configuration, in order.
fn key_names(cluster: &Cluster) -> Vec<String> {
    let path = cluster.root().join("etc/kubernetes/encryption/config.yaml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let doc: serde_yaml::Value = serde_yaml::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    doc["resources"][0]["providers"][0]["secretbox"]["keys"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_string())
        .collect()
}

fn assert_kubectl_reads_every_value(kubectl_exe: &Path, cluster: &Cluster) {
    let out = kubectl_until_ok(
        kubectl_exe,
        cluster,
        &["get", "secrets", "-l", "rotate-test=yes", "-o", "json"],
        Duration::from_secs(30),
    );
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), SECRETS);
    for item in items {
        let name = item["metadata"]["name"].as_str().unwrap();
        let value = base64::engine::general_purpose::STANDARD
            .decode(item["data"]["v"].as_str().unwrap())
            .unwrap();
        assert_eq!(value, format!("value-of-{name}").as_bytes());
    }
}

/// Kills the child when the test fails before it ends.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A real cluster holding [`SECRETS`] Secrets written with boot's first key, with the tools to
/// look at it; `None` (skipped, or failed in CI) without them.
struct Rotation {
    cluster: Cluster,
    kubectl: std::path::PathBuf,
    etcdctl: std::path::PathBuf,
}

fn cluster_with_secrets() -> Option<Rotation> {
    let etcdctl = require::tool("etcdctl")?;
    let (cluster, kubectl_exe) = cluster::real_cluster()?;
    let init = cluster.boot(&["init"]);
    assert!(init.status.success(), "{}", text(&init));
    let manifest: String = (0..SECRETS)
        .map(|i| {
            format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s-{i}, namespace: default, labels: {{rotate-test: \"yes\"}}}}\nstringData: {{v: value-of-s-{i}}}\n"
            )
        })
        .collect();
    let file = cluster.dir.path().join("secrets.yaml");
    std::fs::write(&file, manifest).unwrap();
    kubectl_until_ok(
        &kubectl_exe,
        &cluster,
        &["apply", "-f", file.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert_eq!(key_names(&cluster), ["key1"]);
    assert_all_encrypted_with(&etcdctl, &cluster, "key1");

    Some(Rotation {
        cluster,
        kubectl: kubectl_exe,
        etcdctl,
    })
}

// The two rotations run on clusters of their own, in parallel: the automatic reloads spend
// minutes waiting for the API server's once-a-minute poll.
#[test]
fn rotate_key_re_encrypts_every_secret_and_drops_the_old_key() {
    let Some(Rotation {
        cluster,
        kubectl: kubectl_exe,
        etcdctl,
    }) = cluster_with_secrets()
    else {
        return;
    };
    // The default: each step loaded by the API server's automatic reload, nothing restarted.
    let started = Instant::now();
    let rotate = cluster.boot(&["secrets", "rotate-key"]);
    let took = started.elapsed();
    assert!(rotate.status.success(), "{}", text(&rotate));
    let stdout = String::from_utf8_lossy(&rotate.stdout);
    assert!(stdout.contains("automatic reload"), "{stdout}");
    assert!(!stdout.contains("Restarting"), "{stdout}");
    assert_eq!(key_names(&cluster), ["key2"], "key1 is gone from the file");
    assert!(!cluster
        .root()
        .join("var/lib/boot/encryption-rotation.json")
        .exists());
    assert_all_encrypted_with(&etcdctl, &cluster, "key2");
    assert_kubectl_reads_every_value(&kubectl_exe, &cluster);
    eprintln!("MEASURED: rotation with automatic reloads took {took:?}");
}

#[test]
fn rotate_key_by_restarts_killed_half_way_is_finished_by_a_re_run() {
    let Some(Rotation {
        cluster,
        kubectl: kubectl_exe,
        etcdctl,
    }) = cluster_with_secrets()
    else {
        return;
    };
    // By restarts, killed once step 1 is recorded (the new key written second); a re-run
    // finishes it.
    let journal = cluster.root().join("var/lib/boot/encryption-rotation.json");
    let mut first = Child(
        Command::new(BOOT)
            .args(["secrets", "rotate-key", "--restart", "--root"])
            .arg(cluster.root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(240);
    while !std::fs::read_to_string(&journal).is_ok_and(|j| j.contains("\"promote\"")) {
        assert!(first.0.try_wait().unwrap().is_none(), "ended before step 2");
        assert!(Instant::now() < deadline, "step 1 never finished");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    let names = key_names(&cluster);
    assert!(
        names == ["key1", "key2"] || names == ["key2", "key1"],
        "{names:?}"
    );

    let started = Instant::now();
    let rerun = cluster.boot(&["secrets", "rotate-key", "--restart"]);
    let took = started.elapsed();
    assert!(rerun.status.success(), "{}", text(&rerun));
    let stdout = String::from_utf8_lossy(&rerun.stdout);
    assert!(
        stdout.contains("Continuing the rotation to key2"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("[1/4]"),
        "step 1 is not repeated: {stdout}"
    );
    assert!(stdout.contains("kube-apiserver is ready again"), "{stdout}");
    assert_eq!(key_names(&cluster), ["key2"]);
    assert!(!journal.exists());
    assert_all_encrypted_with(&etcdctl, &cluster, "key2");
    assert_kubectl_reads_every_value(&kubectl_exe, &cluster);
    eprintln!("MEASURED: the rest of a rotation by restarts took {took:?}");
}

#[test]
fn rotate_key_without_encryption_at_rest_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("root/etc/kubernetes/manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("kube-apiserver.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: kube-apiserver, namespace: kube-system}\nspec:\n  containers:\n  - name: kube-apiserver\n    image: k\n    command: [kube-apiserver, --etcd-servers=https://127.0.0.1:2379]\n",
    )
    .unwrap();
    let out = Command::new(BOOT)
        .args(["secrets", "rotate-key", "--root"])
        .arg(dir.path().join("root"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("encryption at rest is not configured"),
        "{stderr}"
    );
    assert!(stderr.contains("kube-apiserver.yaml"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
}
