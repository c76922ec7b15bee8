//! etcd snapshots (`boot etcd snapshot save|ls|prune|restore`, the agent's schedule and `boot
//! upgrade`'s backup): saved from the local member through the Maintenance API ([`save`]),
//! checked as etcd's restore checks them ([`check`]), named and pruned in the snapshot directory
//! ([`list`]), taken on a cron [`schedule`], and restored into a new single-member cluster by
//! the etcd release the node runs ([`restore`]).
//!
//! Touches: the snapshot directory (`/var/lib/boot/snapshots` by default, 0700, files 0600) and,
//! for a restore, the static pod manifests, etcd's data directory and its siblings.

mod bolt;
mod file;
pub mod list;
pub mod restore;
mod save;
pub mod schedule;
pub mod scheduled;

pub use file::{check, hex, Checked};
pub use list::{Entry, Kind, SnapshotName};
pub use save::{save, Saved};
pub use schedule::{Schedule, ScheduleError};

use std::path::PathBuf;

use super::EtcdError;

/// Where snapshots go unless `BootConfiguration.etcdSnapshots.directory` says otherwise (k3s
/// keeps them under its data directory too).
pub const DEFAULT_DIR: &str = "/var/lib/boot/snapshots";

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid etcd snapshot: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path} already exists")]
    Exists { path: PathBuf },
    #[error("the snapshot for {path} did not arrive whole: {reason}")]
    Stream { path: PathBuf, reason: String },
    #[error(transparent)]
    Etcd(#[from] EtcdError),
}
