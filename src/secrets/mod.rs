//! Encryption at rest over time: `boot secrets rotate-key` replaces the key of the API server's
//! `EncryptionConfiguration` (written by `boot init`, see [`crate::render::security`]) without a
//! moment where an API server cannot read what etcd holds, re-writes every encrypted object with
//! the new key through the API, checks in etcd that none is left with the old key, and only then
//! drops it.
//!
//! Touches: the file the API server's `--encryption-provider-config` names, the journal
//! `/var/lib/boot/encryption-rotation.json`, and (when restarts load the file) the API server's
//! manifest; reads etcd with the API server's client certificate. All paths already
//! `--root`-prefixed by the caller.

pub mod api;
pub mod config;
pub mod journal;
mod rotate;

pub use rotate::{Reload, Rotation, SecretsError, LOADED_ANNOTATION};

use std::path::Path;

/// Reads one of boot's own files (no symlink followed) of at most `max` bytes.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    crate::host::read_bounded(path, max, crate::host::Links::Refuse).map_err(|e| e.to_string())
}
