//! Every side effect on the host: the `--root` prefix ([`HostRoot`]), atomic file writes and the
//! facts the configuration falls back on.

pub mod facts;
mod fs;
pub mod layout;
pub mod ledger;
pub mod limits;
pub mod lookup;
mod read;
mod root;

pub use fs::{stage_all, write_all, Staged, WriteError};
pub use read::{read_bounded, read_bounded_if_exists, Links, ReadError};
pub use root::HostRoot;

use std::path::PathBuf;

/// One file `boot` will write: where, with which mode, and its full content. Rendering produces
/// these in memory; [`write_all`] writes them only once everything has rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// The absolute path on this host, `--root` prefix included.
    pub path: PathBuf,
    /// File mode, e.g. `0o600` for keys, kubeconfigs and manifests (kubeadm).
    pub mode: u32,
    pub bytes: Vec<u8>,
}

impl RenderedFile {
    pub fn new(path: impl Into<PathBuf>, mode: u32, bytes: impl Into<Vec<u8>>) -> Self {
        RenderedFile {
            path: path.into(),
            mode,
            bytes: bytes.into(),
        }
    }
}
