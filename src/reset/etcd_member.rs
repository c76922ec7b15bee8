//! reset's `remove-etcd-member` phase (kubeadm's `phases/reset/removeetcdmember.go`): while this
//! node's etcd still runs, its member leaves the cluster, so that the members that stay keep
//! their quorum; the last member is never removed. The member is the one the etcd manifest
//! (`etcd.yaml`, from the plan) describes, or, for a join that never wrote it, the one the join
//! journal recorded; the cluster is reached through this member and the members the journal
//! recorded. Reads the manifest, the journal and the etcd client certificate.

use std::path::Path;
use std::time::Duration;

use crate::etcd::local::{LocalMember, ManifestError};
use crate::etcd::{EtcdClient, EtcdError};
use crate::host::HostRoot;
use crate::join::etcd_journal::{remove_member, JoinJournal, JournalError, Removal};

/// etcd manifests are a few KB; the agent's own limit is 10 MB.
const MAX_MANIFEST: u64 = 10 << 20;

#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("the etcd manifest {0}")]
    Manifest(#[from] ManifestError),
    /// etcd did not remove the member. `joined`: this node is known to share its cluster (it
    /// joined, or its manifest names other members), so skipping would leave a dead member.
    #[error("cannot remove this node's etcd member: {error}")]
    Etcd { error: EtcdError, joined: bool },
}

/// Removes this node's member; `None` when this node runs no stacked etcd.
pub async fn remove_own_member(
    root: &HostRoot,
    manifest: Option<&Path>,
    timeout: Duration,
) -> Result<Option<Removal>, MemberError> {
    let journal = JoinJournal::load(root)?;
    let local = match manifest {
        Some(path) => read_manifest(path, root)?,
        None => None,
    };
    let (peer_url, files, mut endpoints, joined) = match (&local, &journal) {
        (Some(local), journal) => (
            local.peer_url.clone(),
            local.client_files.clone(),
            local.client_urls.clone(),
            journal.is_some() || local.initial_members > 1,
        ),
        (None, Some(journal)) => (
            journal.peer_url.clone(),
            journal.client_files(),
            Vec::new(),
            true,
        ),
        (None, None) => return Ok(None),
    };
    if let Some(journal) = &journal {
        for endpoint in &journal.endpoints {
            if !endpoints.contains(endpoint) {
                endpoints.push(endpoint.clone());
            }
        }
    }
    let id = journal.as_ref().and_then(|j| j.member);
    let removal = async {
        let client = EtcdClient::new(&endpoints, &files, timeout)?;
        remove_member(&client, &peer_url, id).await
    };
    removal
        .await
        .map(Some)
        .map_err(|error| MemberError::Etcd { error, joined })
}

/// The local member, if the manifest exists; read without following a symlink, bounded.
fn read_manifest(path: &Path, root: &HostRoot) -> Result<Option<LocalMember>, ManifestError> {
    let bytes = crate::host::read_bounded_if_exists(path, MAX_MANIFEST, crate::host::Links::Refuse)
        .map_err(|e| ManifestError {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    LocalMember::from_manifest(path, &bytes, root.prefix()).map(Some)
}
