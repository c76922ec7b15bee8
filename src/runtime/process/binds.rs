//! The bind mounts of a process-runtime container: a `volumeMount` whose `mountPath` differs
//! from its volume's path (or a `subPath` of it) becomes a bind mount in the container's private
//! mount namespace. A writable mount at the same path needs nothing (the process already sees the
//! host's file system); a `readOnly` one is bound onto itself and remounted read-only, so
//! `readOnly` always holds.
//!
//! Touches: the mount targets on the host (creates missing ones, empty).

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Container;

use crate::runtime::linux::volumes::below_without_symlinks;

/// One bind mount a container needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
    /// The source is a file (the target must then be a file too).
    pub is_file: bool,
}

/// The bind mounts a container needs: its mounts whose `mountPath` differs from the volume path.
pub fn bind_mounts(
    container: &Container,
    volume_paths: &[(String, PathBuf)],
) -> Result<Vec<BindMount>, String> {
    let mut mounts = Vec::new();
    for mount in container.volume_mounts.iter().flatten() {
        let Some((_, source)) = volume_paths.iter().find(|(name, _)| name == &mount.name) else {
            return Err(format!(
                "volumeMount {} names no volume of the pod",
                mount.name
            ));
        };
        let mut source = source.clone();
        if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            source = below_without_symlinks(&source, sub).map_err(|problem| {
                format!("volumeMount {} subPath {sub:?} {problem}", mount.name)
            })?;
        }
        let target = PathBuf::from(&mount.mount_path);
        let read_only = mount.read_only.unwrap_or(false);
        if source == target && !read_only {
            continue;
        }
        let is_file = fs::metadata(&source).is_ok_and(|m| !m.is_dir());
        mounts.push(BindMount {
            source,
            target,
            read_only,
            is_file,
        });
    }
    Ok(mounts)
}

/// Bind mount targets must exist on the host (the process runtime has no root file system of
/// its own): creates empty directories or files where missing.
pub fn ensure_targets(mounts: &[BindMount]) -> std::io::Result<()> {
    for mount in mounts {
        if mount.target.exists() {
            continue;
        }
        if mount.is_file {
            if let Some(dir) = mount.target.parent() {
                fs::create_dir_all(dir)?;
            }
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&mount.target)?;
        } else {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&mount.target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn sub_paths_through_symlinks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let volume = dir.path().join("vol");
        fs::create_dir_all(volume.join("real")).unwrap();
        std::os::unix::fs::symlink("/etc", volume.join("escape")).unwrap();
        let c: Container = serde_yaml::from_str(
            "{name: c, volumeMounts: [{name: v, mountPath: /x, subPath: escape/passwd}]}",
        )
        .unwrap();
        let paths = vec![("v".to_string(), volume.clone())];
        let err = bind_mounts(&c, &paths).unwrap_err();
        assert!(err.contains("goes through the symbolic link"), "{err}");
        let ok: Container = serde_yaml::from_str(
            "{name: c, volumeMounts: [{name: v, mountPath: /x, subPath: real}]}",
        )
        .unwrap();
        assert_eq!(
            bind_mounts(&ok, &paths).unwrap()[0].source,
            volume.join("real")
        );
    }

    #[test]
    fn only_differing_paths_need_bind_mounts() {
        let c: Container = serde_yaml::from_str(
            "{name: c, volumeMounts: [{name: same, mountPath: /a}, {name: other, mountPath: /data, readOnly: true}, {name: ro, mountPath: /b, readOnly: true}]}",
        )
        .unwrap();
        let paths = vec![
            ("same".to_string(), PathBuf::from("/a")),
            ("other".to_string(), PathBuf::from("/srv/x")),
            ("ro".to_string(), PathBuf::from("/b")),
        ];
        let mounts = bind_mounts(&c, &paths).unwrap();
        let found: Vec<(&Path, &Path, bool)> = mounts
            .iter()
            .map(|m| (m.source.as_path(), m.target.as_path(), m.read_only))
            .collect();
        assert_eq!(
            found,
            [
                (Path::new("/srv/x"), Path::new("/data"), true),
                (Path::new("/b"), Path::new("/b"), true),
            ],
            "a read-only mount at its own path is bound onto itself"
        );
    }
}
