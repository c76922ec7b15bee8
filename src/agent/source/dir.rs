//! Reading the manifest directory (reference §7 "Directory watch"): the non-recursive notify watch
//! and the periodic relist. Dotfiles are ignored (so atomic writes through a dot-named temporary
//! file are never seen half-written), subdirectories are skipped, a missing directory means "no
//! pods" rather than an error. Only files whose fingerprint changed are read again.
//!
//! Whoever can write the directory runs processes as root, so its content is untrusted: only
//! regular files are read, opened with `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat` on the
//! open descriptor (a FIFO cannot hang the agent, a symlink to `/dev/zero` is not followed), and
//! never more than 10 MB + 1 byte is read. A directory that is not owned by root (or the agent's
//! user) or is group/world-writable is warned about.
//!
//! Touches: the manifest directory (read only).

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use notify::EventKind;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::manifest::{ManifestError, StaticPod, MAX_MANIFEST_BYTES};
use super::set::{Fingerprint, ManifestSet};

/// Re-reads the directory into `set`: new and changed files are parsed, vanished ones forgotten.
/// Returns whether anything changed.
pub fn relist(set: &mut ManifestSet, dir: &Path, node_name: &str) -> io::Result<bool> {
    let entries = scan(dir)?;
    let present: BTreeSet<PathBuf> = entries.iter().map(|(p, _)| p.clone()).collect();
    let before = set.files().count();
    set.retain(&present);
    let mut changed = set.files().count() != before;
    for (path, fingerprint) in entries {
        if set.needs_read(&path, fingerprint) {
            set.apply(&path, fingerprint, read_manifest(&path, node_name));
            changed = true;
        }
    }
    Ok(changed)
}

/// The regular files of `dir` whose names do not start with `.`, sorted, with their fingerprints.
pub fn scan(dir: &Path) -> io::Result<Vec<(PathBuf, Fingerprint)>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut entries = Vec::new();
    for entry in listing {
        let entry = entry?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // Not followed: a symlink is listed (and then refused when read).
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            continue;
        }
        let fingerprint = Fingerprint {
            len: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
        };
        entries.push((path, fingerprint));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Reads and parses one manifest: a regular file (not followed if a symlink), at most 10 MB
/// (the kubelet's limit), read through one descriptor so that what is checked is what is read.
pub fn read_manifest(path: &Path, node_name: &str) -> Result<StaticPod, ManifestError> {
    let read_err = |e: io::Error| ManifestError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => ManifestError::NotRegular {
                path: path.to_path_buf(),
                kind: "a symbolic link",
            },
            Some(libc::ENXIO) => ManifestError::NotRegular {
                path: path.to_path_buf(),
                kind: "a socket",
            },
            _ => read_err(e),
        })?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.file_type().is_file() {
        return Err(ManifestError::NotRegular {
            path: path.to_path_buf(),
            kind: file_kind(&meta),
        });
    }
    if meta.len() > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed, so a file that grew after the fstat is still caught.
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    StaticPod::parse(path, &bytes, node_name)
}

fn file_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// A warning when the manifest directory can be written by others than root: whoever writes a
/// manifest there runs processes as root.
pub fn directory_warning(dir: &Path) -> Option<String> {
    let meta = fs::metadata(dir).ok()?;
    let euid = nix::unistd::geteuid().as_raw();
    let mut problems = Vec::new();
    if meta.uid() != 0 && meta.uid() != euid {
        problems.push(format!("is owned by uid {}, not root", meta.uid()));
    }
    if meta.mode() & 0o022 != 0 {
        problems.push(format!(
            "is group- or world-writable (mode {:o})",
            meta.mode() & 0o7777
        ));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "the manifest directory {} {}: anyone who can write a manifest there runs processes as root; hint: chown root and chmod 0700 it",
            dir.display(),
            problems.join(" and ")
        )
    })
}

/// Watches `dir` (not recursively); every relevant event ([`is_relevant`]) sends a wake-up on `tx`. The
/// supervisor then relists, which also coalesces bursts of events into one pass.
pub fn watch(
    dir: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let watched = dir.to_path_buf();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if is_relevant(&event, &watched) {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// As the kubelet: create, write, chmod, remove and rename of a non-dot file matter; opens and
/// reads do not — the relist itself opens the directory, and reacting to that would re-list
/// forever. A watch error or overflow relists to be safe.
fn is_relevant(event: &notify::Result<notify::Event>, watched: &Path) -> bool {
    let Ok(event) = event else { return true };
    let kind = matches!(
        event.kind,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any
    );
    kind && event.paths.iter().any(|p| {
        p != watched
            && p.file_name()
                .is_some_and(|n| !n.as_encoded_bytes().starts_with(b"."))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_to_manifest_files_trigger_a_relist() {
        use notify::event::{AccessKind, CreateKind, ModifyKind};
        let dir = Path::new("/m");
        let event = |kind, path: &str| Ok(notify::Event::new(kind).add_path(PathBuf::from(path)));
        assert!(is_relevant(
            &event(EventKind::Create(CreateKind::File), "/m/a.yaml"),
            dir
        ));
        assert!(is_relevant(
            &event(EventKind::Modify(ModifyKind::Any), "/m/a.yaml"),
            dir
        ));
        assert!(
            !is_relevant(&event(EventKind::Access(AccessKind::Any), "/m"), dir),
            "the relist's own open"
        );
        assert!(!is_relevant(
            &event(EventKind::Access(AccessKind::Any), "/m/a.yaml"),
            dir
        ));
        assert!(!is_relevant(
            &event(EventKind::Create(CreateKind::File), "/m/.a.yaml.tmp"),
            dir
        ));
        assert!(is_relevant(&Err(notify::Error::generic("overflow")), dir));
    }

    #[test]
    fn relist_skips_dotfiles_and_directories_and_rereads_only_changes() {
        let dir = tempfile::tempdir().unwrap();
        let pod =
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c}]}\n";
        fs::write(dir.path().join("a.yaml"), pod).unwrap();
        fs::write(
            dir.path().join(".hidden.yaml"),
            pod.replace("name: a", "name: h"),
        )
        .unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let mut set = ManifestSet::default();
        assert!(relist(&mut set, dir.path(), "n").unwrap());
        assert_eq!(set.files().count(), 1);
        assert!(
            !relist(&mut set, dir.path(), "n").unwrap(),
            "nothing changed"
        );
        fs::remove_file(dir.path().join("a.yaml")).unwrap();
        assert!(relist(&mut set, dir.path(), "n").unwrap());
        assert_eq!(set.files().count(), 0);
        assert!(relist(&mut set, &dir.path().join("missing"), "n").is_ok());
    }

    #[test]
    fn only_regular_files_are_read_and_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.yaml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
        let started = std::time::Instant::now();
        let mut set = ManifestSet::default();
        relist(&mut set, dir.path(), "n").unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        let problems = set.desired(|_| false).problems;
        let errors: Vec<&str> = problems.iter().map(|p| p.error.as_str()).collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].contains("is a FIFO"), "{errors:?}");
        assert!(errors[1].contains("is a symbolic link"), "{errors:?}");
        assert!(errors[1].contains("only regular files"), "{errors:?}");
    }

    #[test]
    fn warns_about_a_directory_others_can_write() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(directory_warning(dir.path()), None);
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let warning = directory_warning(dir.path()).unwrap();
        assert!(warning.contains("world-writable (mode 777)"), "{warning}");
        assert!(warning.contains("hint:"), "{warning}");
    }
}
