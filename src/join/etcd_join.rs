//! The etcd part of a control-plane join (kubeadm's `CreateStackedEtcdStaticPodManifestFile` with
//! learner mode): find the cluster's members through the API, as kubeadm does (the
//! `kubeadm.kubernetes.io/etcd.advertise-client-urls` annotation of the etcd static pods), check
//! this node is not one already, record the intent in the journal, add this node as a learner and
//! work out `--initial-cluster`. Touches the journal only.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::etcd_journal::{JoinJournal, JournalError};
use crate::etcd::{members, EtcdClient, EtcdError, Member, MemberId};
use crate::host::HostRoot;

/// kubeadm's `EtcdAdvertiseClientUrlsAnnotationKey`.
pub const CLIENT_URLS_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";
/// etcd's client port (kubeadm's `EtcdListenClientPort`).
const ETCD_CLIENT_PORT: u16 = 2379;

#[derive(Debug, thiserror::Error)]
pub enum EtcdJoinError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("etcd member {id} ({name}) already has this node's peer URL {peer_url}")]
    AlreadyMember {
        id: MemberId,
        name: String,
        peer_url: String,
    },
    #[error("etcd member {id} is already named {name:?}, this node's name")]
    NameTaken { id: MemberId, name: String },
}

impl EtcdJoinError {
    pub fn hint(&self) -> &'static str {
        match self {
            EtcdJoinError::AlreadyMember { .. } | EtcdJoinError::NameTaken { .. } => {
                "a node of that name or address is in the cluster: `boot reset` on it (or `etcdctl member remove ID`) first, or join with another --node-name / --apiserver-advertise-address"
            }
            EtcdJoinError::Etcd(_) => {
                "the cluster's etcd members must be reachable from this node on their client port (2379)"
            }
            EtcdJoinError::Journal(_) => "check the state directory /var/lib/boot",
        }
    }
}

/// The client URLs of the etcd members the API knows, from their static pods' annotation; with
/// none (an API server that has no such pods), `https://<API server host>:2379` — right when the
/// join endpoint is a control-plane node, as in a test; a load balancer needs the pods.
pub async fn client_urls(
    client: kube::Client,
    api_server_host: &str,
    timeout: Duration,
) -> Vec<String> {
    let pods: Api<Pod> = Api::namespaced(client, "kube-system");
    let params = ListParams::default().labels("component=etcd,tier=control-plane");
    let listed = tokio::time::timeout(timeout, pods.list(&params)).await;
    let mut urls: Vec<String> = match listed {
        Ok(Ok(list)) => list
            .items
            .iter()
            .filter_map(|p| p.metadata.annotations.as_ref()?.get(CLIENT_URLS_ANNOTATION))
            .flat_map(|urls| urls.split(',').map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    urls.sort();
    urls.dedup();
    if urls.is_empty() {
        return client_urls_fallback(api_server_host);
    }
    urls
}

/// etcd on the API server's host, at the client port: the guess when the API lists no etcd pods.
pub fn client_urls_fallback(api_server_host: &str) -> Vec<String> {
    vec![format!(
        "https://{}:{ETCD_CLIENT_PORT}",
        crate::config::bracket_host(api_server_host)
    )]
}

/// The members, once it is clear this node can join them: no started member has its peer URL
/// or its name. An unstarted member with its peer URL is what a killed earlier join left: it is
/// removed (the cluster cannot reach quorum changes with it counted), as Talos does.
pub async fn check_membership(
    client: &EtcdClient,
    name: &str,
    peer_url: &str,
    out: &mut dyn FnMut(String),
) -> Result<Vec<Member>, EtcdJoinError> {
    let mut list = members::list(client).await?;
    if let Some(stale) = members::find_by_peer_url(&list, peer_url).cloned() {
        if stale.started() {
            return Err(EtcdJoinError::AlreadyMember {
                id: stale.id,
                name: stale.name,
                peer_url: peer_url.to_string(),
            });
        }
        members::remove(client, stale.id).await?;
        out(format!(
            "[etcd] Removed member {} with this node's peer URL, left unstarted by an earlier join",
            stale.id
        ));
        list = members::list(client).await?;
    }
    if let Some(taken) = list.iter().find(|m| m.name == name) {
        return Err(EtcdJoinError::NameTaken {
            id: taken.id,
            name: name.to_string(),
        });
    }
    Ok(list)
}

/// Every member's client URLs (the ones that have started), for the journal.
pub fn all_client_urls(list: &[Member], known: &[String]) -> Vec<String> {
    let mut urls: Vec<String> = known.to_vec();
    urls.extend(list.iter().flat_map(|m| m.client_urls.iter().cloned()));
    urls.sort();
    urls.dedup();
    urls
}

/// Adds this node as a learner, journaled before and after: returns the member and the
/// `--initial-cluster` value.
pub async fn add_learner(
    root: &HostRoot,
    client: &EtcdClient,
    journal: &mut JoinJournal,
) -> Result<(Member, String), EtcdJoinError> {
    journal.save(root)?;
    let (member, list) =
        members::add_learner(client, std::slice::from_ref(&journal.peer_url)).await?;
    journal.member = Some(member.id);
    journal.save(root)?;
    let cluster = members::initial_cluster(&list, &journal.name, &journal.peer_url);
    Ok((member, cluster))
}

/// `--initial-cluster` and `--initial-cluster-state=existing` as etcd extra args, replacing the
/// defaults of the same names (kubeadm's `GetEtcdPodSpec` with initial members).
pub fn joining_args(initial_cluster: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("initial-cluster", initial_cluster.to_string()),
        ("initial-cluster-state", "existing".to_string()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_urls_merge_known_and_listed_without_duplicates() {
        let member = |url: &str| Member {
            id: MemberId(1),
            name: "n".into(),
            peer_urls: vec![],
            client_urls: vec![url.into()],
            is_learner: false,
        };
        let urls = all_client_urls(
            &[
                member("https://10.0.0.2:2379"),
                member("https://10.0.0.1:2379"),
            ],
            &["https://10.0.0.1:2379".into()],
        );
        assert_eq!(urls, ["https://10.0.0.1:2379", "https://10.0.0.2:2379"]);
        let args = joining_args("a=https://x:2380");
        assert_eq!(args["initial-cluster-state"], "existing");
    }
}
