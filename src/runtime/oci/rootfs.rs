//! A container's root file system: an overlay of its image's layers (read-only lower
//! directories, shared by every container of the image) with an upper and work directory of its
//! own, mounted at `<dir>/rootfs` on the host as containerd's overlay snapshotter does; and the
//! removal of all of it, which never descends into a directory that is still a mount point.
//!
//! Touches: `<root>/var/lib/boot/oci/containers/<id>/{rootfs,upper,work}`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::runtime::linux::mounts::is_mount_point;

/// The overlay's mount options must fit in one page.
const MAX_OPTIONS: usize = 4000;

/// The directories of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDirs {
    pub dir: PathBuf,
}

impl ContainerDirs {
    pub fn new(dir: PathBuf) -> ContainerDirs {
        ContainerDirs { dir }
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// The bundle's `config.json`: the container's complete OCI spec.
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    /// The compiled program of the spec's seccomp profile, when the agent compiled it.
    pub fn seccomp_program(&self) -> PathBuf {
        self.dir.join("seccomp.bpf")
    }
    /// The bundle libcontainer runs when the shim installs the seccomp filter itself: the spec
    /// without its profile (see `seccomp_executor`).
    pub fn runtime_bundle(&self) -> PathBuf {
        self.dir.join(RUNTIME_BUNDLE)
    }
    /// The directories of the container libcontainer created from `bundle` (the container's
    /// directory or its [`runtime_bundle`](Self::runtime_bundle)).
    pub fn of_bundle(bundle: &Path) -> ContainerDirs {
        match bundle.parent() {
            Some(dir) if bundle.file_name() == Some(std::ffi::OsStr::new(RUNTIME_BUNDLE)) => {
                ContainerDirs::new(dir.to_path_buf())
            }
            _ => ContainerDirs::new(bundle.to_path_buf()),
        }
    }
}

const RUNTIME_BUNDLE: &str = "libcontainer";

/// The overlay mount options for `layers` (bottom first): overlayfs wants the top layer first.
pub fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> Result<String, String> {
    if layers.is_empty() {
        return Err("the image has no layers".into());
    }
    let mut lower = Vec::with_capacity(layers.len());
    for layer in layers.iter().rev() {
        let text = layer.to_str().ok_or("a layer path is not UTF-8")?;
        if !layer.is_absolute() || text.contains([':', ',', '\n']) {
            return Err(format!(
                "layer path {text:?} must be absolute and free of ':' and ','"
            ));
        }
        lower.push(text);
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if options.len() > MAX_OPTIONS {
        return Err(format!(
            "the overlay options for {} layers are longer than a page ({} bytes)",
            layers.len(),
            options.len()
        ));
    }
    Ok(options)
}

/// Creates the container's directories and mounts the overlay at `rootfs`. The merged root takes
/// its owner and mode from the upper directory, so that gets those of the image's top layer.
pub fn mount_overlay(dirs: &ContainerDirs, layers: &[PathBuf]) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let options = overlay_options(layers, &dirs.upper(), &dirs.work())?;
    for (dir, mode) in [
        (dirs.dir.clone(), 0o711),
        (dirs.work(), 0o700),
        (dirs.rootfs(), 0o700),
        (dirs.upper(), 0o755),
    ] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if let Some(top) = layers.last().and_then(|l| fs::metadata(l).ok()) {
        let upper = dirs.upper();
        fs::set_permissions(&upper, fs::Permissions::from_mode(top.mode() & 0o7777))
            .and_then(|()| std::os::unix::fs::chown(&upper, Some(top.uid()), Some(top.gid())))
            .map_err(|e| format!("cannot set up {}: {e}", upper.display()))?;
    }
    mount(
        Some("overlay"),
        &dirs.rootfs(),
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| {
        format!(
            "cannot mount the overlay at {}: {e}",
            dirs.rootfs().display()
        )
    })
}

/// Unmounts the overlay and removes the container's directory. Refuses to remove anything while
/// `rootfs` is still a mount point: removing through it would delete from the image's layers.
pub fn remove(dirs: &ContainerDirs) -> io::Result<()> {
    let rootfs = dirs.rootfs();
    if is_mount_point(&rootfs) {
        let _ = umount2(&rootfs, MntFlags::MNT_DETACH);
        if is_mount_point(&rootfs) {
            return Err(io::Error::other(format!(
                "{} is still mounted",
                rootfs.display()
            )));
        }
    }
    match fs::remove_dir_all(&dirs.dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_put_the_top_layer_first() {
        let layers = vec![PathBuf::from("/l/0"), PathBuf::from("/l/1")];
        let options =
            overlay_options(&layers, Path::new("/c/upper"), Path::new("/c/work")).unwrap();
        assert_eq!(
            options,
            "lowerdir=/l/1:/l/0,upperdir=/c/upper,workdir=/c/work"
        );
    }

    #[test]
    fn overlay_options_refuse_bad_layer_paths() {
        let opts = |p: &str| overlay_options(&[PathBuf::from(p)], Path::new("/u"), Path::new("/w"));
        assert!(opts("relative").is_err());
        assert!(opts("/a:b").is_err());
        assert!(opts("/a,upperdir=/etc").is_err());
        assert!(overlay_options(&[], Path::new("/u"), Path::new("/w")).is_err());
    }

    #[test]
    fn a_runtime_bundle_belongs_to_its_container() {
        let dirs = ContainerDirs::new(PathBuf::from("/state/containers/id"));
        assert_eq!(ContainerDirs::of_bundle(&dirs.runtime_bundle()), dirs);
        assert_eq!(ContainerDirs::of_bundle(&dirs.dir), dirs);
    }
}
