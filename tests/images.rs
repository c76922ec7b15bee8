//! `boot images pull` against a real registry (Debian's `docker-registry`) with images the tests
//! build and push with skopeo: pull and unpack (modes, owners, links, devices, xattrs,
//! whiteouts), a re-pull that fetches no blob, a tampered blob, an unknown image, a registry that
//! is down, and the library contract the OCI runtime uses.

#[path = "common/require.rs"]
mod require;
#[path = "common/images_support.rs"]
mod support;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use boot::host::HostRoot;
use boot::image::{ImageRef, Store};
use support::*;

struct Tools {
    registry: PathBuf,
    skopeo: PathBuf,
    busybox: PathBuf,
}

fn tools() -> Option<Tools> {
    Some(Tools {
        registry: require::tool("docker-registry")?,
        skopeo: require::tool("skopeo")?,
        busybox: require::file("/bin/busybox")?,
    })
}

/// Two layers: busybox plus a file tree with every entry kind, then a layer that deletes a file
/// (whiteout) and replaces a directory's content (opaque).
fn push_rich_image(tools: &Tools, registry: &Registry, name: &str) -> String {
    let layout = tempfile::tempdir().unwrap();
    let base = Layer::new()
        .dir("bin/", 0o755)
        .file(
            "bin/busybox",
            0o755,
            &std::fs::read(&tools.busybox).unwrap(),
        )
        .symlink("bin/sh", "busybox")
        .dir("data/", 0o750)
        .file_owned("data/owned", 0o4755, 1234, 5678, b"setuid and owned")
        .hardlink("data/hard", "data/owned")
        .file("data/gone", 0o644, b"deleted by the next layer")
        .dir("data/replaced/", 0o755)
        .file("data/replaced/old", 0o644, b"hidden by the opaque marker")
        .file_with_xattr("data/labelled", b"x", "user.boot", "yes")
        .char_device("dev-null", 1, 3)
        .tar();
    let top = Layer::new()
        .file("data/.wh.gone", 0o644, b"")
        .dir("data/replaced/", 0o755)
        .file("data/replaced/.wh..wh..opq", 0o644, b"")
        .file("data/replaced/new", 0o600, b"new")
        .tar();
    let manifest = write_layout(layout.path(), "v1", &[base, top], &["/bin/sh"]);
    push(
        &tools.skopeo,
        layout.path(),
        "v1",
        &registry.host(),
        &format!("{name}:v1"),
    );
    manifest
}

#[test]
fn pull_unpacks_every_entry_kind_and_a_re_pull_fetches_no_blob() {
    let Some(tools) = tools() else { return };
    if !require::root("device nodes, owners and trusted.* xattrs in unpacked layers") {
        return;
    }
    let registry = Registry::start(&tools.registry);
    push_rich_image(&tools, &registry, "test/rich");
    let root = tempfile::tempdir().unwrap();
    let image = format!("{}/test/rich:v1", registry.host());

    let before = registry.blob_gets();
    let out = boot(root.path(), &["images", "pull", &image]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("Pulled {image}")),
        "{}",
        text(&out)
    );
    let fetched = registry.blob_gets() - before;
    assert_eq!(fetched, 3, "config and two layers, each once");

    let host_root = HostRoot::under(root.path()).unwrap();
    let store = Store::open(&host_root).unwrap();
    let local = store
        .resolve(&image.parse::<ImageRef>().unwrap())
        .unwrap()
        .expect("present");
    assert_eq!(local.layers.len(), 2);
    let cmd = local.config.config().as_ref().and_then(|c| c.cmd().clone());
    assert_eq!(cmd, Some(vec!["/bin/sh".to_string()]));
    assert!(local.repo_digests[0].starts_with(&format!("{}/test/rich@sha256:", registry.host())));
    check_base_layer(&local.layers[0]);
    check_top_layer(&local.layers[1]);

    // Present: IfNotPresent does not even ask the registry for blobs; --always re-resolves the
    // manifest but downloads no blob it has.
    let again = boot(root.path(), &["images", "pull", &image]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("is present"),
        "{}",
        text(&again)
    );
    let always = boot(root.path(), &["images", "pull", "--always", &image]);
    assert!(always.status.success(), "{}", text(&always));
    assert_eq!(
        registry.blob_gets() - before,
        fetched,
        "a re-pull fetched a blob again"
    );

    let ls = boot(root.path(), &["images", "ls"]);
    assert!(
        String::from_utf8_lossy(&ls.stdout).contains(&image),
        "{}",
        text(&ls)
    );
    let rm = boot(root.path(), &["images", "rm", &image]);
    assert!(rm.status.success(), "{}", text(&rm));
    assert!(!local.layers[0].exists(), "rm collected the unpacked layer");
}

fn check_base_layer(dir: &Path) {
    let meta = |p: &str| std::fs::symlink_metadata(dir.join(p)).unwrap();
    assert_eq!(
        std::fs::read_link(dir.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let owned = meta("data/owned");
    assert_eq!((owned.uid(), owned.gid()), (1234, 5678));
    assert_eq!(
        owned.permissions().mode() & 0o7777,
        0o4755,
        "set-uid kept after chown"
    );
    assert_eq!(
        meta("data/hard").ino(),
        owned.ino(),
        "hard link shares the inode"
    );
    assert_eq!(meta("data").permissions().mode() & 0o777, 0o750);
    assert_eq!(meta("data/owned").mtime(), 1_700_000_000);
    let device = meta("dev-null");
    assert!(device.file_type().is_char_device());
    assert_eq!(device.rdev(), libc::makedev(1, 3));
    assert_eq!(
        xattr(&dir.join("data/labelled"), "user.boot").as_deref(),
        Some(&b"yes"[..])
    );
}

fn check_top_layer(dir: &Path) {
    let whiteout = std::fs::symlink_metadata(dir.join("data/gone")).unwrap();
    assert!(
        whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
        "whiteout is a 0/0 device"
    );
    assert!(
        !dir.join("data/.wh.gone").exists(),
        "whiteout files are never materialised"
    );
    assert_eq!(
        xattr(&dir.join("data/replaced"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!dir.join("data/replaced/.wh..wh..opq").exists());
    assert_eq!(
        std::fs::read(dir.join("data/replaced/new")).unwrap(),
        b"new"
    );
}

fn xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = CString::new(key).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a buffer of the given length.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_is_stored() {
    let Some(tools) = tools() else { return };
    let registry = Registry::start(&tools.registry);
    let layout = tempfile::tempdir().unwrap();
    let layer = Layer::new().file("hello", 0o644, b"the real content").tar();
    write_layout(
        layout.path(),
        "v1",
        std::slice::from_ref(&layer),
        &["/hello"],
    );
    push(
        &tools.skopeo,
        layout.path(),
        "v1",
        &registry.host(),
        "test/tampered:v1",
    );
    let layer_hex = sha256_hex(&gzip(&layer));
    let data = registry.blob_data(&layer_hex);
    let mut bytes = std::fs::read(&data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();

    let root = tempfile::tempdir().unwrap();
    let image = format!("{}/test/tampered:v1", registry.host());
    let out = boot(root.path(), &["images", "pull", &image]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("digest mismatch") && stderr.contains(&layer_hex),
        "{}",
        text(&out)
    );
    let store = root.path().join("var/lib/boot/images");
    assert!(
        !store.join("blobs/sha256").join(&layer_hex).exists(),
        "tampered blob stored"
    );
    assert_eq!(
        std::fs::read_dir(store.join("layers/sha256"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(store.join("tmp")).unwrap().count(),
        0,
        "partial left behind"
    );
}

#[test]
fn an_unknown_image_names_the_registry_and_hints_at_import() {
    let Some(tools) = tools() else { return };
    let registry = Registry::start(&tools.registry);
    let root = tempfile::tempdir().unwrap();
    let image = format!("{}/no/such:v9", registry.host());
    let out = boot(root.path(), &["images", "pull", &image]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&image) && stderr.contains(&registry.host()),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains("hint:") && stderr.contains("boot images import"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_registry_that_is_down_is_reported_with_its_cause() {
    let root = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", free_port());
    let image = format!("{host}/x/y:1");
    let out = boot(root.path(), &["images", "pull", &image]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(
        stderr.contains(&host) && stderr.contains("connect"),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains("hint:") && stderr.contains("mirror"),
        "{}",
        text(&out)
    );
}

#[test]
fn invalid_references_are_refused_before_any_request() {
    let root = tempfile::tempdir().unwrap();
    let out = boot(root.path(), &["images", "pull", "Busybox:1"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("must be lowercase"),
        "{}",
        text(&out)
    );
}

/// The kubelet's credentials file holds registry passwords: one others can read is warned about
/// (naming it and the fix), one only root reads is not.
#[test]
fn a_credentials_file_others_can_read_is_warned_about() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("var/lib/kubelet/config.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, r#"{"auths":{"r.example":{"auth":"dXNlcjpwYXNz"}}}"#).unwrap();
    let image = format!("127.0.0.1:{}/x/y:1", free_port());
    for (mode, warned) in [(0o644, true), (0o640, true), (0o600, false)] {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let out = boot(root.path(), &["images", "pull", &image]);
        assert_eq!(out.status.code(), Some(7), "{}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let warning = stderr
            .lines()
            .find(|l| l.contains("WARNING") && l.contains("/var/lib/kubelet/config.json"));
        assert_eq!(warning.is_some(), warned, "mode {mode:o}: {}", text(&out));
        if let Some(warning) = warning {
            assert!(
                warning.contains(&format!("{mode:o}")) && warning.contains("chmod 0600"),
                "{warning}"
            );
        }
    }
}
