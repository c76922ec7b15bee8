//! `boot images import`: an OCI layout directory, an `oci-archive` tar written by skopeo, a
//! legacy `docker save` tar; and hostile layers (a `..` entry, a write through an absolute
//! symlink, a hard link out of the layer, a whiteout of `.` or `..`), which are refused without
//! writing or removing anything outside the layer being unpacked.

#[path = "common/require.rs"]
mod require;
#[path = "common/images_support.rs"]
mod support;

use std::path::Path;
use std::process::Command;

use boot::host::HostRoot;
use boot::image::{ImageRef, Store};
use support::*;

fn resolve(root: &Path, image: &str) -> Option<boot::image::LocalImage> {
    let store = Store::open(&HostRoot::under(root).unwrap()).unwrap();
    store.resolve(&image.parse::<ImageRef>().unwrap()).unwrap()
}

fn simple_layer() -> Vec<u8> {
    Layer::new()
        .dir("app/", 0o755)
        .file("app/run", 0o755, b"#!/bin/sh\necho hi\n")
        .symlink("app/link", "/app/run")
        .tar()
}

#[test]
fn imports_an_oci_layout_directory_under_its_name() {
    let layout = tempfile::tempdir().unwrap();
    write_layout(
        layout.path(),
        "example.com/app:v1",
        &[simple_layer()],
        &["/app/run"],
    );
    let root = tempfile::tempdir().unwrap();
    let out = boot(
        root.path(),
        &["images", "import", layout.path().to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let local = resolve(root.path(), "example.com/app:v1").expect("imported");
    assert_eq!(
        std::fs::read(local.layers[0].join("app/run")).unwrap(),
        b"#!/bin/sh\necho hi\n"
    );
    // An absolute symlink is kept as written: it points inside the container's root.
    assert_eq!(
        std::fs::read_link(local.layers[0].join("app/link")).unwrap(),
        Path::new("/app/run")
    );
}

#[test]
fn a_layout_tagged_only_by_tag_needs_a_name() {
    let layout = tempfile::tempdir().unwrap();
    write_layout(layout.path(), "v1", &[simple_layer()], &["/app/run"]);
    let root = tempfile::tempdir().unwrap();
    let dir = layout.path().to_str().unwrap();
    let out = boot(root.path(), &["images", "import", dir]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--name"),
        "{}",
        text(&out)
    );
    let out = boot(
        root.path(),
        &["images", "import", dir, "--name", "local/app:v1"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(resolve(root.path(), "docker.io/local/app:v1").is_some());
}

#[test]
fn imports_an_oci_archive_written_by_skopeo() {
    let Some(skopeo) = require::tool("skopeo") else {
        return;
    };
    let layout = tempfile::tempdir().unwrap();
    write_layout(layout.path(), "v2", &[simple_layer()], &["/app/run"]);
    let archive = tempfile::tempdir().unwrap();
    let tar = archive.path().join("app.tar");
    let out = Command::new(skopeo)
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:v2", layout.path().display()))
        .arg(format!(
            "oci-archive:{}:registry.example/app:v2",
            tar.display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let root = tempfile::tempdir().unwrap();
    let out = boot(root.path(), &["images", "import", tar.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        resolve(root.path(), "registry.example/app:v2").is_some(),
        "{}",
        text(&out)
    );
}

#[test]
fn imports_a_legacy_docker_save_tar() {
    let layer = simple_layer();
    let diff_id = sha256_hex(&layer);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": host_arch(), "os": "linux",
        "config": {"Entrypoint": ["/app/run"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
    }))
    .unwrap();
    let config_name = format!("{}.json", sha256_hex(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name, "RepoTags": ["app:saved"], "Layers": ["0123abcd/layer.tar"],
    }]))
    .unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", &manifest),
        (config_name.as_str(), &config),
        ("0123abcd/layer.tar", &layer),
        ("0123abcd/VERSION", &b"1.0".to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append_data(&mut h, name, &data[..]).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("saved.tar");
    std::fs::write(&tar_path, builder.into_inner().unwrap()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = boot(
        root.path(),
        &["images", "import", tar_path.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let local = resolve(root.path(), "docker.io/library/app:saved").expect("imported");
    let entrypoint = local
        .config
        .config()
        .as_ref()
        .and_then(|c| c.entrypoint().clone());
    assert_eq!(entrypoint, Some(vec!["/app/run".to_string()]));
    assert!(local.layers[0].join("app/run").is_file());
}

/// Imports a one-layer layout and expects a refusal that names `entry`.
fn assert_refused(layer: Vec<u8>, entry: &str) -> tempfile::TempDir {
    let layout = tempfile::tempdir().unwrap();
    write_layout(layout.path(), "evil.example/x:1", &[layer], &["/x"]);
    let root = tempfile::tempdir().unwrap();
    let out = boot(
        root.path(),
        &["images", "import", layout.path().to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refused") && stderr.contains(entry),
        "{}",
        text(&out)
    );
    let store = root.path().join("var/lib/boot/images");
    assert_eq!(
        std::fs::read_dir(store.join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(std::fs::read_dir(store.join("tmp")).unwrap().count(), 0);
    assert!(resolve(root.path(), "evil.example/x:1").is_none());
    root
}

#[test]
fn a_parent_directory_entry_is_refused() {
    let root = assert_refused(
        Layer::new().file("../escaped", 0o644, b"x").tar(),
        "../escaped",
    );
    assert!(!root
        .path()
        .join("var/lib/boot/images/layers/escaped")
        .exists());
    assert!(!root.path().join("var/lib/boot/images/tmp/escaped").exists());
}

#[test]
fn writing_through_an_absolute_symlink_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_str().unwrap().to_string();
    let layer = Layer::new()
        .symlink("evil", &target)
        .file("evil/pwned", 0o644, b"x")
        .tar();
    assert_refused(layer, "evil/pwned");
    assert!(
        !outside.path().join("pwned").exists(),
        "wrote through the symlink"
    );
}

#[test]
fn a_hard_link_out_of_the_layer_is_refused() {
    assert_refused(
        Layer::new()
            .hardlink("passwd", "../../../../etc/passwd")
            .tar(),
        "passwd",
    );
}

#[test]
fn a_relative_symlink_climbing_out_is_refused() {
    assert_refused(Layer::new().symlink("a/up", "../../etc").tar(), "a/up");
}

/// A whiteout of `.` or `..` names the layer's own directory or the store's `tmp/` holding it
/// (other pulls' partial downloads): refused before anything is removed, at the root and below.
#[test]
fn a_whiteout_of_the_current_or_parent_directory_is_refused() {
    for entry in [".wh...", ".wh..", "app/.wh...", "app/.wh.."] {
        let layout = tempfile::tempdir().unwrap();
        let layer = Layer::new()
            .dir("app/", 0o755)
            .file("app/run", 0o755, b"x")
            .file(entry, 0o644, b"")
            .tar();
        write_layout(layout.path(), "evil.example/x:1", &[layer], &["/x"]);
        let root = tempfile::tempdir().unwrap();
        // Another pull's partial download, as the store keeps it while it runs.
        let store = Store::open(&HostRoot::under(root.path()).unwrap()).unwrap();
        let other = store.dir().join("tmp/blob-0123.4242.0");
        std::fs::write(&other, b"half a layer").unwrap();
        let out = boot(
            root.path(),
            &["images", "import", layout.path().to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(7), "{entry}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("refused") && stderr.contains(entry),
            "{entry}: {}",
            text(&out)
        );
        assert!(other.is_file(), "{entry} removed another pull's download");
        assert_eq!(
            std::fs::read_dir(store.dir().join("tmp")).unwrap().count(),
            1,
            "{entry}: the partial layer stayed behind"
        );
        assert!(resolve(root.path(), "evil.example/x:1").is_none());
    }
}

#[test]
fn reset_keeps_the_store_only_when_asked() {
    let layout = tempfile::tempdir().unwrap();
    write_layout(
        layout.path(),
        "example.com/kept:v1",
        &[simple_layer()],
        &["/app/run"],
    );
    let root = tempfile::tempdir().unwrap();
    let out = boot(
        root.path(),
        &["images", "import", layout.path().to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = boot(root.path(), &["reset", "--force", "--keep-images"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        resolve(root.path(), "example.com/kept:v1").is_some(),
        "--keep-images removed the image"
    );
    let out = boot(root.path(), &["reset", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !root.path().join("var/lib/boot/images").exists(),
        "reset left the store"
    );
}
