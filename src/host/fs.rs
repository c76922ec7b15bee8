//! Atomic writes: every file goes to a dot-named temporary file in its own directory, is synced,
//! given its mode and renamed into place. The kubelet (and boot's agent) ignore dotfiles in the
//! manifest directory, so a watcher never sees a half-written manifest (reference §10).
//!
//! The temporary file has a random name and is created with `O_CREAT|O_EXCL` (the `tempfile`
//! crate), so a symlink planted in the directory can never redirect the write. A directory boot
//! writes into must belong to boot's user (root) and must not be writable by anyone else: one that
//! is group- or world-writable has those bits removed, as files in it could otherwise be swapped.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

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
    stage_all(files)?.commit(|_| true)
}

/// Files written to their temporary names beside their targets and not yet renamed into place:
/// the first step of [`write_all`], for a caller that renames them a part at a time (init's
/// phases). Dropping it removes the temporary files of those not committed.
#[derive(Debug, Default)]
pub struct Staged {
    files: Vec<(TempPath, PathBuf)>,
}

/// Stages every file (see [`Staged`]); on a failure none stays staged.
pub fn stage_all(files: &[RenderedFile]) -> Result<Staged, WriteError> {
    let mut staged = Staged::default();
    for file in files {
        let tmp = stage(file).map_err(|source| WriteError {
            path: file.path.clone(),
            source,
        })?;
        staged.files.push((tmp, file.path.clone()));
    }
    Ok(staged)
}

impl Staged {
    /// Renames the staged files whose target `wanted` accepts into place, each directory synced.
    pub fn commit(&mut self, wanted: impl Fn(&Path) -> bool) -> Result<(), WriteError> {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.files)
            .into_iter()
            .partition(|(_, path)| wanted(path));
        self.files = later;
        for (tmp, path) in now {
            tmp.persist(&path).map_err(|e| WriteError {
                path: path.clone(),
                source: e.error,
            })?;
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|source| WriteError {
                        path: dir.to_path_buf(),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// Whether `path` is staged and not committed yet.
    pub fn holds(&self, path: &Path) -> bool {
        self.files.iter().any(|(_, p)| p == path)
    }
}

fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// A directory boot writes into belongs to boot's user and is writable by no one else.
fn check_dir(dir: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(io::Error::other(format!(
            "the directory {} belongs to uid {}, not to uid {me} that writes boot's files; a file \
             in it could be replaced (chown it, or remove it)",
            dir.display(),
            meta.uid()
        )));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o7755))?;
    }
    Ok(())
}

/// Writes the content to a new, randomly named dotfile beside the target, with the exact mode.
fn stage(file: &RenderedFile) -> io::Result<TempPath> {
    let dir = file.path.parent().unwrap_or(Path::new("/"));
    create_dir_all(dir)?;
    check_dir(dir)?;
    if file.path.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "a directory is in the way",
        ));
    }
    let name = file
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".boot-tmp")
        .permissions(fs::Permissions::from_mode(file.mode & 0o600))
        .tempfile_in(dir)?;
    // The mode given at creation is filtered by the umask; set it exactly.
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(file.mode))?;
    tmp.write_all(&file.bytes)?;
    tmp.as_file().sync_all()?;
    Ok(tmp.into_temp_path())
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
    fn a_planted_symlink_never_redirects_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("pki/ca.key");
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "untouched").unwrap();
        // The names an earlier version used for its temporary files.
        std::os::unix::fs::symlink(&victim, dir.path().join("pki/.ca.key.boot-tmp")).unwrap();
        write_all(&[RenderedFile::new(&target, 0o600, "secret")]).unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(&target).unwrap(), "secret");
        assert!(!fs::symlink_metadata(&target).unwrap().is_symlink());
    }

    #[test]
    fn a_world_writable_directory_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        fs::create_dir(&manifests).unwrap();
        fs::set_permissions(&manifests, fs::Permissions::from_mode(0o777)).unwrap();
        write_all(&[RenderedFile::new(manifests.join("etcd.yaml"), 0o600, "x")]).unwrap();
        let mode = fs::metadata(&manifests).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
    }

    #[test]
    fn staged_files_appear_when_committed_and_the_rest_go_with_the_stage() {
        let dir = tempfile::tempdir().unwrap();
        let first = RenderedFile::new(dir.path().join("pki/ca.key"), 0o600, "k");
        let second = RenderedFile::new(dir.path().join("manifests/etcd.yaml"), 0o600, "m");
        let mut staged = stage_all(&[first.clone(), second.clone()]).unwrap();
        assert!(!first.path.exists() && !second.path.exists());
        staged
            .commit(|p| p.starts_with(dir.path().join("pki")))
            .unwrap();
        assert!(first.path.exists() && !second.path.exists());
        assert!(staged.holds(&second.path) && !staged.holds(&first.path));
        drop(staged);
        let left: Vec<_> = fs::read_dir(dir.path().join("manifests"))
            .unwrap()
            .collect();
        assert!(
            left.is_empty(),
            "an uncommitted file stayed staged: {left:?}"
        );
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
