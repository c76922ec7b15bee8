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

/// Reads a regular file (no symlink followed) of at most `max` bytes.
fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err("not a regular file".into());
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(bytes)
}
