//! The init ledger: everything `boot init` creates on the host, recorded *before* it is created,
//! so that `boot reset` removes exactly that — also after an init that was killed halfway.
//!
//! Touches: `<root>/var/lib/boot/ledger.json` (written atomically on every change).

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{write_all, HostRoot, RenderedFile};

/// Where the ledger lives, as a host path.
pub const LEDGER_PATH: &str = "/var/lib/boot/ledger.json";
/// A ledger lists a few dozen paths; anything this large is not one.
pub const LEDGER_LIMIT: u64 = 4 << 20;

/// How the agent was started, so reset can stop it the same way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum AgentLaunch {
    /// A systemd unit; reset stops and disables it and removes the unit file.
    Systemd { unit: String, unit_file: PathBuf },
    /// A detached daemon; reset signals the pid in the pid file.
    Detached {
        pid_file: PathBuf,
        log_file: PathBuf,
    },
    /// Run inside `boot init` itself.
    Foreground,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ledger {
    /// Files boot wrote (rooted paths).
    pub files: BTreeSet<PathBuf>,
    /// Directories that did not exist before boot created them (rooted paths). Reset removes them
    /// when they are empty after everything else, deepest first.
    pub created_dirs: BTreeSet<PathBuf>,
    /// Directories whose whole content is boot's (etcd data, agent state, pod logs): reset empties
    /// them, and removes them too when they are in `created_dirs`.
    pub owned_trees: BTreeSet<PathBuf>,
    /// Ports the control plane listens on, checked free after reset.
    pub ports: BTreeSet<u16>,
    /// boot's directories beyond the fixed ones (the configured certificate, manifest and etcd
    /// directories, and hostPath directories the agent creates): reset refuses a ledger path
    /// outside these and the fixed ones.
    #[serde(default)]
    pub prefixes: BTreeSet<PathBuf>,
    pub agent: Option<AgentLaunch>,
}

impl Ledger {
    pub fn path(root: &HostRoot) -> PathBuf {
        root.path(LEDGER_PATH)
    }

    /// The ledger of an earlier init, if there is one: a regular file (a symlink is refused),
    /// read up to [`LEDGER_LIMIT`] bytes.
    pub fn load(root: &HostRoot) -> io::Result<Option<Ledger>> {
        let bytes =
            super::read_bounded_if_exists(&Self::path(root), LEDGER_LIMIT, super::Links::Refuse)?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(io::Error::other)
    }

    pub fn save(&self, root: &HostRoot) -> io::Result<()> {
        let path = Self::path(root);
        let mut bytes = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_all(&[RenderedFile::new(path, 0o600, bytes)]).map_err(|e| e.source)
    }

    /// Records `path` and every ancestor of it that does not exist yet (up to the root).
    pub fn note_dir(&mut self, root: &HostRoot, path: &Path) {
        let mut missing = Vec::new();
        let mut current = Some(path);
        while let Some(dir) = current {
            if dir == root.prefix() || dir.exists() || dir.symlink_metadata().is_ok() {
                break;
            }
            missing.push(dir.to_path_buf());
            current = dir.parent();
        }
        self.created_dirs.extend(missing);
    }

    /// Records files about to be written (and the directories they will create).
    pub fn note_files(&mut self, root: &HostRoot, files: &[RenderedFile]) {
        for file in files {
            if let Some(dir) = file.path.parent() {
                self.note_dir(root, dir);
            }
            if !file.path.exists() {
                self.files.insert(file.path.clone());
            }
        }
    }

    /// Records a tree whose content is boot's, and the directories leading to it.
    pub fn note_tree(&mut self, root: &HostRoot, dir: &Path) {
        self.note_dir(root, dir);
        self.owned_trees.insert(dir.to_path_buf());
    }

    /// Records one of boot's directories beyond the fixed ones (see [`Ledger::prefixes`]).
    pub fn note_prefix(&mut self, dir: &Path) {
        self.prefixes.insert(dir.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_only_what_does_not_exist_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path()).unwrap();
        std::fs::create_dir_all(root.path("/etc")).unwrap();
        let mut ledger = Ledger::default();
        let manifest =
            RenderedFile::new(root.path("/etc/kubernetes/manifests/etcd.yaml"), 0o600, "x");
        ledger.note_files(&root, &[manifest]);
        ledger.note_tree(&root, &root.path("/var/lib/etcd"));
        let dirs: Vec<_> = ledger
            .created_dirs
            .iter()
            .map(|d| root.host_path(d))
            .collect();
        let expected: Vec<PathBuf> = [
            "/etc/kubernetes",
            "/etc/kubernetes/manifests",
            "/var",
            "/var/lib",
            "/var/lib/etcd",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(dirs, expected);
        ledger.agent = Some(AgentLaunch::Foreground);
        ledger.save(&root).unwrap();
        assert_eq!(Ledger::load(&root).unwrap(), Some(ledger));
    }
}
