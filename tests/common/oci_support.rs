//! A busybox image built from `busybox-static` (one layer of applets plus a small top layer), an
//! OCI runtime over a temporary root, and pods to run in it. Used by `tests/oci*.rs`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use boot::runtime::oci::image::{ImageConfig, ImageRootfs, StaticImages};
use boot::runtime::oci::{OciRuntime, OciSettings};
use k8s_openapi::api::core::v1::PodSpec;

// A test crate may include two support modules that both bring `wait`: two copies, no harm.
#[allow(clippy::duplicate_mod)]
#[path = "wait.rs"]
pub mod wait;
#[allow(unused_imports)] // each test crate uses a different part
pub use wait::wait_for;

pub const IMAGE: &str = "test.local/busybox:1";
pub const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "id", "ls", "sleep", "env", "pwd", "grep", "test", "true", "false",
    "hostname", "touch", "mount", "ps", "wc",
];

/// Layer 0: `/bin/busybox` and its applets, `/etc/passwd`, `/etc/group`; layer 1: a marker file
/// and an `/etc/motd` over layer 0's.
pub fn busybox_layers(dir: &Path) -> Vec<PathBuf> {
    let bottom = dir.join("layers/0");
    let top = dir.join("layers/1");
    for d in ["bin", "etc", "tmp"] {
        std::fs::create_dir_all(bottom.join(d)).unwrap();
    }
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", bottom.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bottom.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        bottom.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1001:web:/home/web:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        bottom.join("etc/group"),
        "root:x:0:\nweb:x:1001:\nextra:x:2000:web\n",
    )
    .unwrap();
    std::fs::write(bottom.join("etc/motd"), "bottom\n").unwrap();
    std::fs::write(top.join("etc/motd"), "top\n").unwrap();
    std::fs::write(top.join("layer-marker"), "").unwrap();
    vec![bottom, top]
}

pub fn image(layers: Vec<PathBuf>) -> ImageRootfs {
    ImageRootfs {
        id: "sha256:test".into(),
        repo_digest: None,
        layers,
        config: ImageConfig {
            user: Some("web".into()),
            env: vec![
                "PATH=/bin".into(),
                "FROM_IMAGE=image".into(),
                "SHARED=image".into(),
            ],
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo from-cmd".into()],
            working_dir: Some("/tmp".into()),
            stop_signal: None,
        },
    }
}

pub fn settings(root: &Path) -> OciSettings {
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    OciSettings {
        state_dir: root.join("var/lib/boot/oci"),
        run_dir: root.join("run/boot/oci"),
        netns_dir: root.join("run/boot/netns"),
        network: None,
        pods_dir: root.join("var/lib/boot/pods"),
        boot_exe: PathBuf::from(env!("CARGO_BIN_EXE_boot")),
        log_max_size: 1 << 20,
        log_max_files: 2,
        cgroup_parent: cgroup_parent(root),
        node_name: "node1".into(),
        cluster_dns: Default::default(),
        host_resolv_conf: root.join("etc/resolv.conf"),
        host_hosts: root.join("etc/hosts"),
    }
}

/// A cgroup parent of this test's own, named after its temporary directory.
pub fn cgroup_parent(root: &Path) -> String {
    let name = root
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().trim_start_matches('.').to_string())
        .unwrap_or_default();
    format!("boot-test-{name}")
}

/// Removes the (empty) cgroup parent directories in every hierarchy.
pub fn remove_cgroup_parent(name: &str) {
    let base = Path::new("/sys/fs/cgroup");
    let mut dirs = vec![base.join(name)];
    if let Ok(entries) = std::fs::read_dir(base) {
        dirs.extend(entries.flatten().map(|e| e.path().join(name)));
    }
    for dir in dirs {
        let _ = std::fs::remove_dir(dir);
    }
}

/// A runtime over `root` that knows the busybox image.
pub fn runtime(root: &Path, layers: &[PathBuf]) -> OciRuntime {
    let images = StaticImages::new();
    images.insert(IMAGE, image(layers.to_vec()));
    OciRuntime::new(settings(root), Arc::new(images))
}

pub fn pod_spec(yaml: &str) -> PodSpec {
    serde_yaml::from_str(yaml).unwrap()
}

/// Lines of `/proc/self/mountinfo` that mention `path`.
pub fn mounts_under(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let needle = path.display().to_string();
    text.lines()
        .filter(|l| l.contains(&needle))
        .map(String::from)
        .collect()
}

/// Every container log under `<root>/var/log/pods`, for failure messages.
pub fn logs(root: &Path) -> String {
    fn walk(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push_str(&format!("== {}\n", path.display()));
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let mut out = String::new();
    walk(&root.join("var/log/pods"), &mut out);
    out
}

/// What a test leaves on the host if it fails half-way: kills every process in the test's cgroup
/// parent, unmounts everything under its root and removes its cgroups, in `Drop`.
pub struct HostCleanup {
    pub root: PathBuf,
    pub cgroup_parent: String,
}

impl Drop for HostCleanup {
    fn drop(&mut self) {
        let base = Path::new("/sys/fs/cgroup");
        let mut parents = vec![base.join(&self.cgroup_parent)];
        if let Ok(entries) = std::fs::read_dir(base) {
            parents.extend(
                entries
                    .flatten()
                    .map(|e| e.path().join(&self.cgroup_parent)),
            );
        }
        fn each_dir(dir: &Path, out: &mut Vec<PathBuf>) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for e in entries.flatten().filter(|e| e.path().is_dir()) {
                    each_dir(&e.path(), out);
                }
            }
            out.push(dir.to_path_buf());
        }
        let mut dirs = Vec::new();
        for parent in parents.iter().filter(|p| p.is_dir()) {
            each_dir(parent, &mut dirs);
        }
        for dir in &dirs {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(String::from))
            .filter(|m| Path::new(m).starts_with(&self.root))
            .collect();
        mounts.sort_by(|a, b| b.cmp(a));
        for mount in mounts {
            let _ = nix::mount::umount2(mount.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        for _ in 0..50 {
            if dirs
                .iter()
                .all(|d| std::fs::remove_dir(d).is_ok() || !d.exists())
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}
