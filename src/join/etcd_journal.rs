//! The join's etcd journal, `/var/lib/boot/join-etcd.json`: written before `boot join` asks etcd
//! to add this node and updated as the member is added and promoted, so that a join that fails,
//! is interrupted or is killed can always be undone — by its own error path, by a rerun of join or
//! by `boot reset` — and never leaves a dead member that costs the others their quorum (kubeadm's
//! classic HA outage). The file is under `/var/lib/boot`, which reset empties.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::etcd::{members, ClientFiles, ClientUrl, EtcdClient, EtcdError, MemberId};
use crate::host::{write_all, HostRoot, RenderedFile, WriteError};

pub const JOURNAL_PATH: &str = "/var/lib/boot/join-etcd.json";
/// A journal is a few hundred bytes.
const MAX_JOURNAL: u64 = 64 * 1024;

/// What the join has asked of etcd so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct JoinJournal {
    /// This member's name (the node name).
    pub name: String,
    /// The peer URL it is added with: how it is found when the add's answer was never recorded.
    pub peer_url: String,
    /// The client URLs of the members when it was added: how it is reached to be removed.
    pub endpoints: Vec<String>,
    /// The etcd client identity (paths on this host).
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Set once etcd answered the add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberId>,
    /// Set once the member votes: the join's etcd part is done.
    #[serde(default)]
    pub promoted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot read the join journal {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl JoinJournal {
    pub fn path(root: &HostRoot) -> PathBuf {
        root.path(JOURNAL_PATH)
    }

    pub fn client_files(&self) -> ClientFiles {
        ClientFiles {
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    /// The journal, if a join left one. Read without following a symlink, bounded, and
    /// validated: URLs parse, credential paths lie beneath the root.
    pub fn load(root: &HostRoot) -> Result<Option<JoinJournal>, JournalError> {
        let path = Self::path(root);
        let fail = |reason: String| JournalError::Read {
            path: path.clone(),
            reason,
        };
        let bytes =
            crate::host::read_bounded_if_exists(&path, MAX_JOURNAL, crate::host::Links::Refuse)
                .map_err(|e| fail(e.to_string()))?;
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let journal: JoinJournal =
            serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?;
        journal.validate(root.prefix()).map_err(fail)?;
        Ok(Some(journal))
    }

    fn validate(&self, root: &Path) -> Result<(), String> {
        for url in std::iter::once(&self.peer_url).chain(&self.endpoints) {
            ClientUrl::parse(url).map_err(|e| e.to_string())?;
        }
        for path in [&self.ca, &self.cert, &self.key] {
            let inside = path.is_absolute()
                && path.starts_with(root)
                && !path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir);
            if !inside {
                return Err(format!(
                    "{} is not beneath {}",
                    path.display(),
                    root.display()
                ));
            }
        }
        Ok(())
    }

    /// Writes the journal atomically (0600).
    pub fn save(&self, root: &HostRoot) -> Result<(), JournalError> {
        let json = serde_json::to_vec_pretty(self).expect("the journal serializes");
        write_all(&[RenderedFile::new(Self::path(root), 0o600, json)])?;
        Ok(())
    }

    /// A client for the cluster as it was when this member was added.
    pub fn client(&self, timeout: Duration) -> Result<EtcdClient, EtcdError> {
        EtcdClient::new(&self.endpoints, &self.client_files(), timeout)
    }
}

/// What removing a node's own member did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    Removed(MemberId),
    /// Not (or no longer) a member: nothing to do.
    NotAMember,
    /// The only member left: removing it would destroy the cluster (kubeadm skips it too).
    LastMember(MemberId),
}

/// Removes the member with `peer_url` (or `id`) through `client`, unless it is the last one.
pub async fn remove_member(
    client: &EtcdClient,
    peer_url: &str,
    id: Option<MemberId>,
) -> Result<Removal, EtcdError> {
    let list = members::list(client).await?;
    let mine = list
        .iter()
        .find(|m| Some(m.id) == id)
        .or_else(|| members::find_by_peer_url(&list, peer_url));
    let Some(mine) = mine else {
        return Ok(Removal::NotAMember);
    };
    if list.len() == 1 {
        return Ok(Removal::LastMember(mine.id));
    }
    // Asked through the other members first: a member that removes itself stops serving, and the
    // answer to the request can be lost with it.
    let mut endpoints: Vec<String> = list
        .iter()
        .filter(|m| m.id != mine.id)
        .flat_map(|m| m.client_urls.iter().cloned())
        // What a member advertises is not trusted to be usable.
        .filter(|url| crate::etcd::ClientUrl::parse(url).is_ok())
        .chain(client.endpoints().iter().map(|e| e.to_string()))
        .collect();
    dedup_in_order(&mut endpoints);
    let through_others = client.with_endpoints(&endpoints)?;
    match members::remove(&through_others, mine.id).await {
        Ok(()) => Ok(Removal::Removed(mine.id)),
        // Listed a moment ago: the attempt whose answer was lost on the way removed it.
        Err(e) if e.is_member_not_found() => Ok(Removal::Removed(mine.id)),
        Err(e) => Err(e),
    }
}

fn dedup_in_order(items: &mut Vec<String>) {
    let mut seen = std::collections::HashSet::new();
    items.retain(|item| seen.insert(item.clone()));
}

/// Undoes the etcd part of a join the journal describes, then deletes the journal. Reaches the
/// cluster through the members recorded at the add (this node's own etcd may be gone).
pub async fn roll_back(
    root: &HostRoot,
    journal: &JoinJournal,
    timeout: Duration,
) -> Result<Removal, EtcdError> {
    let client = journal.client(timeout)?;
    let removal = remove_member(&client, &journal.peer_url, journal.member).await?;
    let _ = std::fs::remove_file(JoinJournal::path(root));
    Ok(removal)
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Removal::Removed(id) => write!(f, "removed etcd member {id}"),
            Removal::NotAMember => write!(f, "not an etcd member (nothing to remove)"),
            Removal::LastMember(id) => write!(
                f,
                "etcd member {id} is the last member of its cluster and was kept"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(root: &Path) -> JoinJournal {
        JoinJournal {
            name: "cp2".into(),
            peer_url: "https://10.0.0.2:2380".into(),
            endpoints: vec!["https://10.0.0.1:2379".into()],
            ca: root.join("etc/kubernetes/pki/etcd/ca.crt"),
            cert: root.join("etc/kubernetes/pki/etcd/healthcheck-client.crt"),
            key: root.join("etc/kubernetes/pki/etcd/healthcheck-client.key"),
            member: Some(MemberId(42)),
            promoted: false,
        }
    }

    #[test]
    fn round_trips_and_refuses_what_is_not_boots() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path()).unwrap();
        assert!(JoinJournal::load(&root).unwrap().is_none());
        let mine = journal(root.prefix());
        mine.save(&root).unwrap();
        assert_eq!(JoinJournal::load(&root).unwrap(), Some(mine.clone()));
        let mode = std::fs::metadata(JoinJournal::path(&root)).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );

        let mut outside = mine.clone();
        outside.key = "/etc/shadow".into();
        outside.save(&root).unwrap();
        let err = JoinJournal::load(&root).unwrap_err().to_string();
        assert!(err.contains("not beneath"), "{err}");

        let mut bad_url = mine;
        bad_url.endpoints = vec!["file:///x".into()];
        bad_url.save(&root).unwrap();
        assert!(JoinJournal::load(&root).is_err());

        std::fs::remove_file(JoinJournal::path(&root)).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", JoinJournal::path(&root)).unwrap();
        assert!(
            JoinJournal::load(&root).is_err(),
            "a symlink is not followed"
        );
    }
}
