//! Checking a snapshot file: etcd's Maintenance API sends the database followed by the SHA-256
//! of the database, and `etcdutl snapshot restore` recognises such a file by its size (a whole
//! number of 512-byte blocks plus 32) and refuses it when the digest does not match. boot
//! checks the same, and that the database itself is one ([`super::bolt`]), before a snapshot is
//! named or restored.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::bolt;
use super::SnapshotError;

/// etcd's `sha256.Size`, and the block size its `hasHash` test uses.
const DIGEST: u64 = 32;
const BLOCK: u64 = 512;

/// A snapshot that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The file's size, digest included.
    pub size: u64,
    /// The SHA-256 of the database (the file's last 32 bytes), hex.
    pub sha256: String,
    /// The newest revision in it; `None` for an empty store.
    pub revision: Option<u64>,
    pub modified: SystemTime,
}

/// Checks the snapshot at `path` (links followed: a user names it): its digest over the whole
/// database, then the database's structure.
pub fn check(path: &Path) -> Result<Checked, SnapshotError> {
    let invalid = |reason: String| SnapshotError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let io = |e: std::io::Error| SnapshotError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(invalid("not a regular file".into()));
    }
    let size = meta.len();
    if size < DIGEST + 2 * BLOCK || size % BLOCK != DIGEST {
        return Err(invalid(format!(
            "{size} bytes is not a database followed by its SHA-256 (a snapshot saved through \
             etcd's Maintenance API is a whole number of 512-byte blocks plus 32 bytes)"
        )));
    }
    let db_len = size - DIGEST;
    let mut hasher = Sha256::new();
    let mut reader = (&file).take(db_len);
    let mut buf = vec![0u8; 1024 * 1024];
    let mut read = 0u64;
    loop {
        let n = reader.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
    }
    if read != db_len {
        return Err(invalid(format!(
            "it shrank while being read ({read} of {db_len} bytes)"
        )));
    }
    let mut stored = [0u8; DIGEST as usize];
    bolt::ReadAt::read_exact_at(&file, &mut stored, db_len).map_err(io)?;
    let computed = hasher.finalize();
    if computed[..] != stored[..] {
        return Err(invalid(format!(
            "its SHA-256 does not match: the database hashes to {}, the file says {} (corrupted \
             or truncated)",
            hex(&computed),
            hex(&stored)
        )));
    }
    let facts = bolt::inspect(&file, db_len).map_err(|e| invalid(e.to_string()))?;
    Ok(Checked {
        size,
        sha256: hex(&stored),
        revision: facts.revision,
        modified: meta.modified().map_err(io)?,
    })
}

/// The revision of a snapshot without hashing it (for listings): the database's own structure
/// only. `None` when the file is not readable as one.
pub fn revision(path: &Path) -> Option<Option<u64>> {
    let file = File::open(path).ok()?;
    let size = file.metadata().ok()?.len();
    let db_len = size.checked_sub(DIGEST)?;
    bolt::inspect(&file, db_len).ok().map(|f| f.revision)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
