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

/// Writes every file atomically. Directories are created first for all files, so an unwritable
/// output directory fails before any file is in place.
pub fn write_all(files: &[RenderedFile]) -> Result<(), WriteError> {
    for file in files {
        if let Some(dir) = file.path.parent() {
            create_dir_all(dir).map_err(|source| WriteError {
                path: dir.to_path_buf(),
                source,
            })?;
            check_writable(dir).map_err(|source| WriteError {
                path: dir.to_path_buf(),
                source,
            })?;
        }
    }
    for file in files {
        write_atomic(file).map_err(|source| WriteError {
            path: file.path.clone(),
            source,
        })?;
    }
    Ok(())
}

fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Probes a directory by creating and removing a dot-file, so permission problems surface before
/// the first real file is written.
fn check_writable(dir: &Path) -> io::Result<()> {
    let probe = tempfile::Builder::new()
        .prefix(".boot-probe")
        .tempfile_in(dir)?;
    probe.close()
}

fn write_atomic(file: &RenderedFile) -> io::Result<()> {
    let dir = file.path.parent().unwrap_or(Path::new("/"));
    let name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.boot-tmp"));
    let result = (|| {
        let mut out: File = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(file.mode)
            .open(&tmp)?;
        // The mode passed to open() is filtered by the umask; set it exactly.
        out.set_permissions(fs::Permissions::from_mode(file.mode))?;
        out.write_all(&file.bytes)?;
        out.sync_all()?;
        fs::rename(&tmp, &file.path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
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
        let err = write_all(&[ok.clone(), bad]).unwrap_err();
        assert_eq!(err.path, blocker);
        assert!(!ok.path.exists());
    }
}
