//! `hostPath` volumes for the process runtime: each volume's path is checked or created per its
//! `type` as the kubelet's hostPath plugin does (`DirectoryOrCreate` 0755, `FileOrCreate` 0644,
//! reference §4.7), and a `volumeMount` whose `mountPath` differs from the volume's path becomes a
//! bind mount in the container's private mount namespace. A writable mount at the same path needs
//! nothing (the process already sees the host's file system); a `readOnly` one is bound onto
//! itself and remounted read-only, so `readOnly` always holds. `emptyDir` lives under
//! `/var/lib/boot/pods/<uid>/volumes/<name>`.
//!
//! Touches: the hostPath paths (may create them), `<root>/var/lib/boot/pods/`.

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Volume};

/// One bind mount a container needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
    /// The source is a file (the target must then be a file too).
    pub is_file: bool,
}

/// Checks or creates one volume's host path; returns the path.
pub fn prepare_volume(volume: &Volume, empty_dir_base: &Path) -> Result<PathBuf, String> {
    if volume.empty_dir.is_some() {
        let dir = empty_dir_base.join(&volume.name);
        fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "volume {}: cannot create {}: {e}",
                volume.name,
                dir.display()
            )
        })?;
        return Ok(dir);
    }
    let Some(host) = &volume.host_path else {
        return Err(format!(
            "volume {}: only hostPath and emptyDir volumes are supported",
            volume.name
        ));
    };
    let path = PathBuf::from(&host.path);
    let kind = host.type_.as_deref().unwrap_or("");
    let fail = |what: &str| format!("volume {}: hostPath {} {what}", volume.name, path.display());
    let meta = fs::metadata(&path);
    match kind {
        "" => {}
        "DirectoryOrCreate" if meta.is_err() => {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&path)
                .map_err(|e| fail(&format!("cannot be created: {e}")))?;
        }
        "FileOrCreate" if meta.is_err() => {
            if let Some(dir) = path.parent() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(dir)
                    .map_err(|e| fail(&format!("cannot be created: {e}")))?;
            }
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o644)
                .open(&path)
                .map_err(|e| fail(&format!("cannot be created: {e}")))?;
        }
        "DirectoryOrCreate" | "Directory" => {
            if !meta.as_ref().is_ok_and(|m| m.is_dir()) {
                return Err(fail("is not a directory"));
            }
        }
        "FileOrCreate" | "File" => {
            if !meta.as_ref().is_ok_and(|m| m.is_file()) {
                return Err(fail("is not a file"));
            }
        }
        "Socket" | "CharDevice" | "BlockDevice" => {
            let ok = meta.as_ref().is_ok_and(|m| {
                let t = m.file_type();
                match kind {
                    "Socket" => t.is_socket(),
                    "CharDevice" => t.is_char_device(),
                    _ => t.is_block_device(),
                }
            });
            if !ok {
                return Err(fail(&format!("is not a {kind}")));
            }
        }
        other => return Err(fail(&format!("has unknown type {other:?}"))),
    }
    Ok(path)
}

/// Removes `<pods_dir>/<uid>` (the pod's emptyDir volumes); a symlink there is removed, not
/// followed.
pub fn remove_pod_dir(pods_dir: &Path, uid: &crate::runtime::names::PodUid) {
    let dir = pods_dir.join(uid.as_str());
    match fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() => {
            let _ = fs::remove_dir_all(&dir);
        }
        Ok(_) => {
            let _ = fs::remove_file(&dir);
        }
        Err(_) => {}
    }
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

/// `base/sub` when no component of `sub` is a symlink: a container that can write its volume
/// could otherwise plant a link that makes the next start bind-mount any host path (the
/// kubelet's subPath symlink check, CVE-2017-1002101). `sub` is validated relative and free of
/// `..` when the manifest is parsed.
fn below_without_symlinks(base: &Path, sub: &str) -> Result<PathBuf, String> {
    let mut path = base.to_path_buf();
    for part in Path::new(sub).components() {
        match part {
            std::path::Component::Normal(name) => path.push(name),
            std::path::Component::CurDir => continue,
            _ => return Err("must be a relative path without '..'".into()),
        }
        if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "goes through the symbolic link {}, which is not followed",
                path.display()
            ));
        }
    }
    Ok(path)
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
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_per_type_with_kubelet_modes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        let f = dir.path().join("c/f.conf");
        let vol = |name: &str, path: &Path, t: &str| -> Volume {
            serde_yaml::from_str(&format!(
                "{{name: {name}, hostPath: {{path: '{}', type: {t}}}}}",
                path.display()
            ))
            .unwrap()
        };
        assert_eq!(
            prepare_volume(&vol("d", &d, "DirectoryOrCreate"), dir.path()).unwrap(),
            d
        );
        assert_eq!(
            fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o755
        );
        prepare_volume(&vol("f", &f, "FileOrCreate"), dir.path()).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let err = prepare_volume(&vol("x", &d, "File"), dir.path()).unwrap_err();
        assert!(err.contains("is not a file"), "{err}");
        let err = prepare_volume(&vol("y", &dir.path().join("none"), "Directory"), dir.path())
            .unwrap_err();
        assert!(err.contains("volume y: hostPath"), "{err}");
    }

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
