//! `boot etcd snapshot restore FILE`: the snapshot is checked before anything is touched; then
//! the control plane's manifests go into a stash (etcd and everything that talks to it, so no
//! API server serves a cache newer than the restored store), the agent runs the release's own
//! restore tool ([`pod`]) into a staging directory beside etcd's data, the data directory is
//! moved aside (kept) and the restored one takes its place, and the manifests come back; done
//! when etcd and the API server are ready again. Each step is recorded in a [`journal`] first, so
//! running the command again after a kill finishes the restore. A failure before the data moved
//! puts the manifests back: the cluster runs on its previous data again.
//!
//! A restore makes a new single-member cluster. With other members, that would split the
//! cluster, so it is refused while any other member still answers on its peer URL; once they are
//! stopped, this node goes on alone and the others re-join it (k3s's `--cluster-reset`).
//!
//! Touches: the manifest directory, `<kubernetes dir>/tmp/boot-restore-*`, etcd's data directory
//! and its siblings `<data>.restore-*` (removed at the end) and `<data>.before-restore-*`
//! (kept), the journal.

pub mod journal;
pub mod pod;
mod run;

pub use run::{Outcome, Restore};

use std::path::PathBuf;

use super::SnapshotError;
use crate::agent::watch::WaitError;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("restore journal {path}: {reason}")]
    Journal { path: PathBuf, reason: String },
    #[error(
        "a restore of another snapshot (sha256 {journal}…) is under way; {given} is not that \
         snapshot"
    )]
    OtherSnapshot { journal: String, given: String },
    #[error(
        "other etcd members still run: {}; restoring here would split the cluster",
        running.join(", ")
    )]
    OthersRunning { running: Vec<String> },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step failed before the data moved; the manifests are back.
    #[error("{step}: {cause}; rolled back: the control plane runs on its previous data again")]
    RolledBack { step: String, cause: String },
    /// A step failed after the data moved.
    #[error("{step}: {cause}")]
    Stuck { step: String, cause: WaitError },
}

impl RestoreError {
    pub fn hint(&self) -> String {
        match self {
            RestoreError::Snapshot(_) => {
                "nothing was changed; take another snapshot, or copy an intact one".into()
            }
            RestoreError::Manifest { .. } => {
                "a restore needs this node's etcd manifest as boot init or join wrote it".into()
            }
            RestoreError::Journal { .. } => {
                "fix or remove the journal; the manifests it moved wait under \
                 /etc/kubernetes/tmp/boot-restore-*"
                    .into()
            }
            RestoreError::OtherSnapshot { .. } => {
                "run the restore again with the snapshot it began with".into()
            }
            RestoreError::OthersRunning { .. } => {
                "nothing was changed. Run `boot reset --force` on every other control-plane node \
                 first (or stop their agents and etcd), restore here, then `boot join` them again"
                    .into()
            }
            RestoreError::Io { .. } => {
                "fix the cause and run the same restore again: it continues where it stopped".into()
            }
            RestoreError::RolledBack { .. } => {
                "see `boot logs etcd-restore` for the restore tool's output".into()
            }
            RestoreError::Stuck { .. } => {
                "check `boot status` and `boot logs etcd`; running the same restore again \
                 continues waiting; the previous data is kept beside the data directory \
                 (<data>.before-restore-*)"
                    .into()
            }
        }
    }
}
