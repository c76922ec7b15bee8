//! The restore journal, `<root>/var/lib/boot/etcd-restore.json` (0600): which snapshot is being
//! restored, where the stopped manifests and the data wait, and which step comes next, so that a
//! restore killed at any instant is finished by running it again (never a control plane left
//! stopped, never two data directories half-swapped). Its paths are checked on reading: each
//! must be where boot puts it (the stash under `/etc/kubernetes/tmp`, the staging and the kept
//! data beside etcd's data directory), so an edited journal cannot point a rename elsewhere.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const JOURNAL_FILE: &str = "/var/lib/boot/etcd-restore.json";
const MAX_JOURNAL: u64 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Move the control-plane manifests into the stash and wait until their pods are gone.
    Stop,
    /// Copy the snapshot into the staging directory and run the restore pod.
    Restore,
    /// Move the data directory aside and the restored one into its place.
    Swap,
    /// Put the manifests back and wait until etcd and the API server are ready.
    Start,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// The SHA-256 of the snapshot's database: a re-run must name the same snapshot.
    pub sha256: String,
    pub step: Step,
    /// Where the stopped manifests wait: `<kubernetes dir>/tmp/boot-restore-<stamp>`.
    pub stash: PathBuf,
    /// etcd's data directory, and beside it the staging directory and where the old data is kept.
    pub data_dir: PathBuf,
    pub staging: PathBuf,
    pub kept: PathBuf,
    /// The manifest file names moved into the stash (etcd's first).
    pub moved: Vec<String>,
}

/// The manifests a restore stops: etcd and everything that talks to it.
pub const CONTROL_PLANE: [&str; 4] = [
    "etcd.yaml",
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
];

impl Journal {
    /// The paths boot would have chosen for `stamp`.
    pub fn paths(
        kubernetes_dir: &Path,
        data_dir: &Path,
        stamp: &str,
    ) -> (PathBuf, PathBuf, PathBuf) {
        let name = data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let beside = |suffix: &str| data_dir.with_file_name(format!("{name}.{suffix}-{stamp}"));
        (
            kubernetes_dir
                .join("tmp")
                .join(format!("boot-restore-{stamp}")),
            beside("restore"),
            beside("before-restore"),
        )
    }

    /// Whether every path is one boot would have written for this data directory.
    fn valid(&self, kubernetes_dir: &Path) -> bool {
        let stamp = self
            .stash
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("boot-restore-"))
            .filter(|s| s.bytes().all(|b| b.is_ascii_alphanumeric()));
        let Some(stamp) = stamp else { return false };
        let (stash, staging, kept) = Self::paths(kubernetes_dir, &self.data_dir, stamp);
        stash == self.stash
            && staging == self.staging
            && kept == self.kept
            && self
                .moved
                .iter()
                .all(|m| CONTROL_PLANE.contains(&m.as_str()))
            && self.sha256.len() == 64
            && self.sha256.bytes().all(|b| b.is_ascii_hexdigit())
    }
}

/// The journal of an unfinished restore, `Ok(None)` when there is none.
pub fn read(path: &Path, kubernetes_dir: &Path) -> Result<Option<Journal>, String> {
    let Some(bytes) =
        crate::host::read_bounded_if_exists(path, MAX_JOURNAL, crate::host::Links::Refuse)
            .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let journal: Journal =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a restore journal: {e}"))?;
    if !journal.valid(kubernetes_dir) {
        return Err("it names paths boot does not use for a restore".into());
    }
    Ok(Some(journal))
}

pub fn write(path: &Path, journal: &Journal) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(journal).map_err(|e| e.to_string())?;
    crate::host::write_all(&[crate::host::RenderedFile::new(path, 0o600, bytes)])
        .map_err(|e| e.to_string())
}

pub fn remove(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal() -> Journal {
        let (stash, staging, kept) = Journal::paths(
            Path::new("/r/etc/kubernetes"),
            Path::new("/r/var/lib/etcd"),
            "20260314T120000Z",
        );
        Journal {
            sha256: "a".repeat(64),
            step: Step::Swap,
            stash,
            data_dir: "/r/var/lib/etcd".into(),
            staging,
            kept,
            moved: vec!["etcd.yaml".into()],
        }
    }

    #[test]
    fn paths_sit_beside_the_data_and_under_tmp() {
        let j = journal();
        assert_eq!(
            j.stash,
            Path::new("/r/etc/kubernetes/tmp/boot-restore-20260314T120000Z")
        );
        assert_eq!(
            j.staging,
            Path::new("/r/var/lib/etcd.restore-20260314T120000Z")
        );
        assert_eq!(
            j.kept,
            Path::new("/r/var/lib/etcd.before-restore-20260314T120000Z")
        );
    }

    #[test]
    fn a_journal_round_trips_and_an_edited_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.json");
        let k8s = Path::new("/r/etc/kubernetes");
        assert_eq!(read(&path, k8s), Ok(None));
        write(&path, &journal()).unwrap();
        assert_eq!(read(&path, k8s), Ok(Some(journal())));
        for edit in [
            |j: &mut Journal| j.kept = "/etc".into(),
            |j: &mut Journal| j.staging = "/r/var/lib/other".into(),
            |j: &mut Journal| j.moved.push("../../x.yaml".into()),
            |j: &mut Journal| j.stash = "/r/etc/kubernetes/tmp/boot-restore-../x".into(),
        ] {
            let mut j = journal();
            edit(&mut j);
            write(&path, &j).unwrap();
            assert!(read(&path, k8s).is_err(), "{j:?}");
        }
        remove(&path).unwrap();
        remove(&path).unwrap();
    }
}
