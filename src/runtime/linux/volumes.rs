//! A pod's volumes on the host, for both runtimes: each `hostPath` is checked or created per its
//! `type` as the kubelet's hostPath plugin does (`DirectoryOrCreate` 0755, `FileOrCreate` 0644,
//! reference §4.7); an `emptyDir` is a directory under `/var/lib/boot/pods/<uid>/volumes/<name>`,
//! removed with the pod's sandbox; a `subPath` is resolved inside its volume without following
//! symbolic links.
//!
//! Touches: the hostPath paths (may create them), `<root>/var/lib/boot/pods/`.

use std::fs::{self, DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Volume;

use crate::runtime::PodRef;

/// Each volume of the pod with its prepared host path (`pods_dir` holds the emptyDirs).
pub fn prepare_pod_volumes(
    pod: PodRef<'_>,
    pods_dir: &Path,
) -> Result<Vec<(String, PathBuf)>, String> {
    let empty_dir_base = pods_dir.join(pod.uid).join("volumes");
    let volumes = pod.spec.volumes.iter().flatten();
    volumes
        .map(|v| Ok((v.name.clone(), prepare_volume(v, &empty_dir_base)?)))
        .collect()
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

/// `base/sub` when no component of `sub` is a symlink: a container that can write its volume
/// could otherwise plant a link that makes the next start bind-mount any host path (the
/// kubelet's subPath symlink check, CVE-2017-1002101). `sub` is validated relative and free of
/// `..` when the manifest is parsed.
pub fn below_without_symlinks(base: &Path, sub: &str) -> Result<PathBuf, String> {
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
}
