//! Pulls from a slow registry (a throttling proxy in front of the real one): a pull killed with
//! SIGKILL halfway leaves no blob or layer visible and the next pull completes; two pulls of the
//! same image at once share the work (each blob crosses the wire once).

#[path = "common/require.rs"]
mod require;
#[path = "common/images_support.rs"]
mod support;

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::*;

/// A layer of incompressible bytes, so the throttle dominates.
fn big_layer(size: usize) -> Vec<u8> {
    let mut data = vec![0u8; size];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    Layer::new().file("blob", 0o644, &data).tar()
}

fn tmp_has_partial(root: &std::path::Path) -> bool {
    std::fs::read_dir(root.join("var/lib/boot/images/tmp"))
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.metadata().is_ok_and(|m| m.len() > 64 * 1024))
        })
        .unwrap_or(false)
}

#[test]
fn a_pull_killed_halfway_leaves_nothing_visible_and_the_next_one_completes() {
    let (Some(registry_bin), Some(skopeo)) =
        (require::tool("docker-registry"), require::tool("skopeo"))
    else {
        return;
    };
    let registry = Registry::start(&registry_bin);
    let layout = tempfile::tempdir().unwrap();
    let layer = big_layer(4 << 20);
    write_layout(
        layout.path(),
        "v1",
        std::slice::from_ref(&layer),
        &["/blob"],
    );
    push(
        &skopeo,
        layout.path(),
        "v1",
        &registry.host(),
        "slow/app:v1",
    );
    // 1 MB/s: the 4 MB layer takes about four seconds.
    let proxy = SlowProxy::start(registry.port, 1 << 20);
    let image = format!("127.0.0.1:{}/slow/app:v1", proxy.port);
    let root = tempfile::tempdir().unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_boot"))
        .arg("--root")
        .arg(root.path())
        .args(["images", "pull", &image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    wait_for("a partial download", Duration::from_secs(30), || {
        tmp_has_partial(root.path())
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let _reap = Reap(child);

    let store = root.path().join("var/lib/boot/images");
    let layer_hex = sha256_hex(&gzip(&layer));
    assert!(
        !store.join("blobs/sha256").join(&layer_hex).exists(),
        "a partial blob is visible"
    );
    assert_eq!(
        std::fs::read_dir(store.join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );

    let direct = format!("{}/slow/app:v1", registry.host());
    let out = boot(root.path(), &["images", "pull", &direct]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(store.join("blobs/sha256").join(&layer_hex).is_file());
    assert_eq!(
        std::fs::read_dir(store.join("layers/sha256"))
            .unwrap()
            .count(),
        1
    );
    // The killed pull's partial file is garbage; prune collects it.
    let prune = boot(root.path(), &["images", "rm", &direct]);
    assert!(prune.status.success(), "{}", text(&prune));
    assert_eq!(std::fs::read_dir(store.join("tmp")).unwrap().count(), 0);
}

#[test]
fn two_pulls_of_one_image_share_the_download() {
    let (Some(registry_bin), Some(skopeo)) =
        (require::tool("docker-registry"), require::tool("skopeo"))
    else {
        return;
    };
    let registry = Registry::start(&registry_bin);
    let layout = tempfile::tempdir().unwrap();
    write_layout(layout.path(), "v1", &[big_layer(1 << 20)], &["/blob"]);
    push(
        &skopeo,
        layout.path(),
        "v1",
        &registry.host(),
        "shared/app:v1",
    );
    let proxy = SlowProxy::start(registry.port, 2 << 20);
    let image = format!("127.0.0.1:{}/shared/app:v1", proxy.port);
    let root = tempfile::tempdir().unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_boot"))
            .arg("--root")
            .arg(root.path())
            .args(["images", "pull", &image])
            .output()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(a.status.success(), "{}", text(&a));
    assert!(b.status.success(), "{}", text(&b));
    // config + layer, once each, whichever process fetched them.
    assert_eq!(proxy.blob_requests.load(Ordering::Relaxed), 2);
}
