//! Atomic writes: every file goes to a dot-named temporary file in its own directory, is synced,
//! given its mode and renamed into place. The kubelet (and boot's agent) ignore dotfiles in the
//! manifest directory, so a watcher never sees a half-written manifest (reference §10).

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::RenderedFile;

/// Mode for directories `boot` creates: they hold keys, kubeconfigs and manifests (0700 as kubeadm
/// creates the manifest directory).
pub const DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
#[error("failed to write {path}: {source}")]
pub struct WriteError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Writes every file atomically, in two steps: first every file's content goes to its temporary
/// file (where permissions, a full disk or a bad path fail), then all are renamed into place. A
/// failure in the first step leaves no file of the set behind.
pub fn write_all(files: &[RenderedFile]) -> Result<(), WriteError> {
    let mut staged: Vec<(PathBuf, &RenderedFile)> = Vec::with_capacity(files.len());
    let result = (|| {
        for file in files {
            let tmp = stage(file).map_err(|source| WriteError {
                path: file.path.clone(),
                source,
            })?;
            staged.push((tmp, file));
        }
        for (tmp, file) in &staged {
            fs::rename(tmp, &file.path).map_err(|source| WriteError {
                path: file.path.clone(),
                source,
            })?;
            if let Some(dir) = file.path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|source| WriteError {
                        path: dir.to_path_buf(),
                        source,
                    })?;
            }
        }
        Ok(())
    })();
    if result.is_err() {
        for (tmp, _) in &staged {
            let _ = fs::remove_file(tmp);
        }
    }
    result
}

fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.boot-tmp"))
}

/// Writes the content to the dot-named temporary file beside the target, with the exact mode.
fn stage(file: &RenderedFile) -> io::Result<PathBuf> {
    if let Some(dir) = file.path.parent() {
        create_dir_all(dir)?;
    }
    if file.path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory is in the way",
        ));
    }
    let tmp = temporary_path(&file.path);
    let result = (|| {
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(file.mode)
            .open(&tmp)?;
        // The mode passed to open() is filtered by the umask; set it exactly.
        out.set_permissions(fs::Permissions::from_mode(file.mode))?;
        out.write_all(&file.bytes)?;
        out.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_with_exact_modes_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let key = RenderedFile::new(dir.path().join("pki/ca.key"), 0o600, "secret");
        let crt = RenderedFile::new(dir.path().join("pki/ca.crt"), 0o644, "cert");
        write_all(&[key.clone(), crt]).unwrap();
        let meta = fs::metadata(&key.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(fs::read_to_string(&key.path).unwrap(), "secret");
        let pki_mode = fs::metadata(dir.path().join("pki"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(pki_mode & 0o777, DIR_MODE);
        let names: Vec<_> = fs::read_dir(dir.path().join("pki"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "temporary files left: {names:?}");
    }

    #[test]
    fn unwritable_directory_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let ok = RenderedFile::new(dir.path().join("ok/a"), 0o600, "a");
        let bad = RenderedFile::new(blocker.join("b"), 0o600, "b");
        let err = write_all(&[ok.clone(), bad.clone()]).unwrap_err();
        assert_eq!(err.path, bad.path);
        assert!(!ok.path.exists());
    }
}
