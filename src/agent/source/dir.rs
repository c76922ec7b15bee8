//! Reading the manifest directory (reference §7 "Directory watch"): the non-recursive notify watch
//! and the periodic relist. Dotfiles are ignored (so atomic writes through a dot-named temporary
//! file are never seen half-written), subdirectories are skipped, a missing directory means "no
//! pods" rather than an error. Only files whose fingerprint changed are read again.
//!
//! Touches: the manifest directory (read only).

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

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
        // Follows symlinks, as the kubelet's os.Stat does.
        let Ok(meta) = fs::metadata(&path) else {
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

/// Reads and parses one manifest, refusing files over the kubelet's 10 MB limit before reading.
pub fn read_manifest(path: &Path, node_name: &str) -> Result<StaticPod, ManifestError> {
    let read_err = |e: io::Error| ManifestError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let size = fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_MANIFEST_BYTES {
        return Err(ManifestError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let bytes = fs::read(path).map_err(read_err)?;
    StaticPod::parse(path, &bytes, node_name)
}

/// Watches `dir` (not recursively); every event on a non-dot name sends a wake-up on `tx`. The
/// supervisor then relists, which also coalesces bursts of events into one pass.
pub fn watch(
    dir: &Path,
    tx: mpsc::UnboundedSender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let relevant = match &event {
            Ok(event) => event.paths.iter().any(|p| {
                p.file_name()
                    .is_some_and(|n| !n.as_encoded_bytes().starts_with(b"."))
            }),
            // Overflow or a watch error: relist to be safe.
            Err(_) => true,
        };
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
