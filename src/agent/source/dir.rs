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
}
