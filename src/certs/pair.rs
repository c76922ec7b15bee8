//! Replacing a certificate and its key so that a crash at any instant leaves either the old
//! pair or the new pair, never a certificate beside a key it does not belong to.
//!
//! Two files cannot be renamed at once, so the replacement is a small roll-forward journal in
//! the certificate's own directory:
//!
//! 1. the new key goes to `.<name>.key.next`, then the new certificate to `.<name>.crt.next`,
//!    each written atomically (temporary file, fsync, rename) — the certificate's `.next` file
//!    existing means both are complete;
//! 2. `.key.next` is renamed over `<name>.key`, then `.crt.next` over `<name>.crt`.
//!
//! [`complete_pending`] finishes step 2 when `.crt.next` exists and discards a lone `.key.next`
//! (a crash inside step 1: the old pair is untouched). Every renewal and expiry check runs it
//! first. The dot names keep the files out of anything that lists the directory for certificates.
//!
//! Touches: `<cert dir>/<name>.{crt,key}` and their `.next` files.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Keys and certificates are written 0600, as kubeadm writes keys (certificates are not secret,
/// but one mode for the pair keeps the journal simple).
const PAIR_MODE: u32 = 0o600;

/// The files of one pair: `<dir>/<base>.crt` and `<dir>/<base>.key`.
#[derive(Debug, Clone)]
pub struct PairPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
    cert_next: PathBuf,
    key_next: PathBuf,
}

impl PairPaths {
    /// `base` is relative to `dir`, e.g. `apiserver` or `etcd/server`.
    pub fn new(dir: &Path, base: &str) -> PairPaths {
        let cert = dir.join(format!("{base}.crt"));
        let key = dir.join(format!("{base}.key"));
        PairPaths {
            cert_next: next_name(&cert),
            key_next: next_name(&key),
            cert,
            key,
        }
    }
}

fn next_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.next"))
}

/// Where a replacement may be interrupted, for tests that simulate a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    KeyStaged,
    CertStaged,
    KeyInPlace,
    Done,
}

/// Replaces the pair; `stop_after` ends early as a crash would (tests only pass `Some`).
pub fn replace(
    paths: &PairPaths,
    cert_pem: &[u8],
    key_pem: &[u8],
    stop_after: Option<Step>,
) -> io::Result<()> {
    let stop = |step: Step| stop_after == Some(step);
    write_atomic(&paths.key_next, key_pem)?;
    if stop(Step::KeyStaged) {
        return Ok(());
    }
    write_atomic(&paths.cert_next, cert_pem)?;
    if stop(Step::CertStaged) {
        return Ok(());
    }
    fs::rename(&paths.key_next, &paths.key)?;
    sync_dir(&paths.key)?;
    if stop(Step::KeyInPlace) {
        return Ok(());
    }
    fs::rename(&paths.cert_next, &paths.cert)?;
    sync_dir(&paths.cert)
}

/// Finishes or discards an interrupted [`replace`]. Returns whether anything was pending.
pub fn complete_pending(paths: &PairPaths) -> io::Result<bool> {
    let cert_staged = is_regular(&paths.cert_next)?;
    let key_staged = is_regular(&paths.key_next)?;
    match (cert_staged, key_staged) {
        (true, true) => {
            fs::rename(&paths.key_next, &paths.key)?;
            fs::rename(&paths.cert_next, &paths.cert)?;
        }
        // The key is already in place: only the certificate is left to move.
        (true, false) => fs::rename(&paths.cert_next, &paths.cert)?,
        (false, true) => fs::remove_file(&paths.key_next)?,
        (false, false) => return Ok(false),
    }
    sync_dir(&paths.cert)?;
    Ok(true)
}

/// `true` for a regular file; a symlink or anything else planted under a `.next` name is an error.
fn is_regular(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => Ok(true),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file; remove it", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Temporary file created exclusively (never following a planted link), synced, renamed.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".boot-pair-")
        .tempfile_in(dir)?;
    tmp.as_file_mut().write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.as_file()
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(PAIR_MODE))?;
    tmp.persist(path).map(drop).map_err(|e| e.error)
}

fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new("."))).and_then(|d| d.sync_all())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, cert: &str, key: &str) -> PairPaths {
        let paths = PairPaths::new(dir, "leaf");
        fs::write(&paths.cert, cert).unwrap();
        fs::write(&paths.key, key).unwrap();
        paths
    }

    fn read(paths: &PairPaths) -> (String, String) {
        (
            fs::read_to_string(&paths.cert).unwrap(),
            fs::read_to_string(&paths.key).unwrap(),
        )
    }

    #[test]
    fn a_crash_at_any_step_recovers_to_one_whole_pair() {
        for (step, expected) in [
            (Step::KeyStaged, ("old-cert", "old-key")),
            (Step::CertStaged, ("new-cert", "new-key")),
            (Step::KeyInPlace, ("new-cert", "new-key")),
            (Step::Done, ("new-cert", "new-key")),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let paths = pair(dir.path(), "old-cert", "old-key");
            replace(&paths, b"new-cert", b"new-key", Some(step)).unwrap();
            complete_pending(&paths).unwrap();
            let (cert, key) = read(&paths);
            assert_eq!((cert.as_str(), key.as_str()), expected, "after {step:?}");
            assert!(
                !complete_pending(&paths).unwrap(),
                "nothing left after {step:?}"
            );
            let names: Vec<_> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            assert_eq!(names.len(), 2, "no stray files after {step:?}: {names:?}");
        }
    }

    #[test]
    fn a_full_replacement_writes_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let paths = pair(dir.path(), "old-cert", "old-key");
        replace(&paths, b"c", b"k", None).unwrap();
        assert_eq!(read(&paths), ("c".into(), "k".into()));
        let mode = fs::metadata(&paths.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_planted_link_under_a_journal_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let paths = pair(dir.path(), "old-cert", "old-key");
        std::os::unix::fs::symlink("/etc/passwd", &paths.cert_next).unwrap();
        let err = complete_pending(&paths).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert_eq!(read(&paths), ("old-cert".into(), "old-key".into()));
    }
}
