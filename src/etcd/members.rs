//! Cluster membership through the gateway's `/v3/cluster/member/{list,add,promote,remove}`.
//! etcd's uint64 IDs travel as JSON strings (protobuf's JSON mapping); boot shows them in hex as
//! etcdctl does.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::client::EtcdClient;
use super::EtcdError;

/// A member's ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

impl std::fmt::Display for MemberId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl std::str::FromStr for MemberId {
    type Err = std::num::ParseIntError;
    /// etcdctl's hex form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(MemberId)
    }
}

impl Serialize for MemberId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for MemberId {
    /// A decimal string (the gateway) or a number (protobuf's JSON mapping accepts both).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Text(String),
            Number(u64),
        }
        match Wire::deserialize(d)? {
            Wire::Number(n) => Ok(MemberId(n)),
            Wire::Text(s) => s.parse().map(MemberId).map_err(serde::de::Error::custom),
        }
    }
}

/// One member as etcd lists it. A member added but not started yet has no name and no client
/// URLs (the gateway omits empty fields).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    #[serde(rename = "ID")]
    pub id: MemberId,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

impl Member {
    /// Started: it has published its name and client URLs.
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }
}

#[derive(Deserialize)]
struct ListAnswer {
    #[serde(default)]
    members: Vec<Member>,
}

#[derive(Deserialize)]
struct AddAnswer {
    member: Member,
    #[serde(default)]
    members: Vec<Member>,
}

#[derive(Serialize)]
struct AddRequest<'a> {
    #[serde(rename = "peerURLs")]
    peer_urls: &'a [String],
    #[serde(rename = "isLearner")]
    is_learner: bool,
}

#[derive(Serialize)]
struct IdRequest {
    #[serde(rename = "ID")]
    id: MemberId,
}

/// The answer carries a header only.
#[derive(Deserialize)]
struct Ignored {}

/// The members of the cluster.
pub async fn list(client: &EtcdClient) -> Result<Vec<Member>, EtcdError> {
    let answer: ListAnswer = client.call("/v3/cluster/member/list", &Empty {}).await?;
    Ok(answer.members)
}

#[derive(Serialize)]
struct Empty {}

/// Adds a non-voting learner with `peer_urls`; returns it and the members after the add.
pub async fn add_learner(
    client: &EtcdClient,
    peer_urls: &[String],
) -> Result<(Member, Vec<Member>), EtcdError> {
    let request = AddRequest {
        peer_urls,
        is_learner: true,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        match reconfigure(client, "/v3/cluster/member/add", &request).await {
            // etcd derives a new member's ID from its peer URLs and the current second, and
            // refuses an ID it has removed ("member not found"). Adding a peer URL again in the
            // second its earlier member was added (a join re-run right after its rollback) hits
            // exactly that; the next second gives a new ID.
            Err(e) if e.is_member_not_found() && attempts < ADD_ATTEMPTS => {
                tokio::time::sleep(until_next_second()).await;
            }
            answer => {
                let answer: AddAnswer = answer?;
                return Ok((answer.member, answer.members));
            }
        }
    }
}

/// Adds tried while etcd's new member ID is one it removed: the server's clock may be behind ours,
/// so two waits for our next second cover a second of skew.
const ADD_ATTEMPTS: u32 = 3;

/// The time to the next wall-clock second, plus a margin for the server to be there too.
fn until_next_second() -> std::time::Duration {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    std::time::Duration::from_millis(1050 - u64::from(since_epoch.subsec_millis()))
}

/// Makes a learner a voting member. etcd refuses while the learner is behind the leader
/// ([`EtcdError::is_learner_not_ready`]); [`super::promote::promote_when_ready`] retries.
pub async fn promote(client: &EtcdClient, id: MemberId) -> Result<(), EtcdError> {
    let _: Ignored = client
        .call("/v3/cluster/member/promote", &IdRequest { id })
        .await?;
    Ok(())
}

/// How long a membership change is retried while etcd calls the cluster unhealthy.
const RECONFIGURE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Removes a member.
pub async fn remove(client: &EtcdClient, id: MemberId) -> Result<(), EtcdError> {
    let _: Ignored = reconfigure(client, "/v3/cluster/member/remove", &IdRequest { id }).await?;
    Ok(())
}

/// A membership change (add, remove). etcd refuses one with "unhealthy cluster", changing nothing,
/// while the members that would remain have not been connected for its health interval (5 s):
/// right after another change or a restart, e.g. a second join just after the first promotion.
/// That refusal is retried each second for up to 30 s, as kubeadm retries its member calls.
async fn reconfigure<B: Serialize, R: serde::de::DeserializeOwned>(
    client: &EtcdClient,
    path: &str,
    body: &B,
) -> Result<R, EtcdError> {
    let start = std::time::Instant::now();
    loop {
        match client.call(path, body).await {
            Err(e) if e.is_unhealthy_cluster() && start.elapsed() < RECONFIGURE_PATIENCE => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            answer => return answer,
        }
    }
}

/// The member whose peer URLs include `peer_url` (how a node finds itself, as kubeadm does).
pub fn find_by_peer_url<'a>(members: &'a [Member], peer_url: &str) -> Option<&'a Member> {
    members
        .iter()
        .find(|m| m.peer_urls.iter().any(|u| u == peer_url))
}

/// `--initial-cluster` for a member joining `members`: the newcomer (not started yet, so nameless
/// in the list) under `name`, every other member by name. etcd checks only that the peer URLs
/// match its membership, so another member that has not started yet (a concurrent join) goes in
/// under its hex ID. Sorted so the manifest is the same however etcd orders its list.
pub fn initial_cluster(members: &[Member], name: &str, peer_url: &str) -> String {
    let mut entries: Vec<String> = members
        .iter()
        .filter(|m| !m.peer_urls.iter().any(|u| u == peer_url))
        .flat_map(|m| {
            let name = if m.started() {
                m.name.clone()
            } else {
                m.id.to_string()
            };
            m.peer_urls.iter().map(move |u| format!("{name}={u}"))
        })
        .collect();
    entries.push(format!("{name}={peer_url}"));
    entries.sort();
    entries.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_lists_parse_with_string_ids_and_omitted_fields() {
        let json = br#"{"header":{"cluster_id":"1","member_id":"2","raft_term":"3"},
            "members":[
              {"ID":"10276657743932975437","name":"n1","peerURLs":["https://10.0.0.1:2380"],
               "clientURLs":["https://10.0.0.1:2379"]},
              {"ID":"42","peerURLs":["https://10.0.0.2:2380"],"isLearner":true}]}"#;
        let list: ListAnswer = serde_json::from_slice(json).unwrap();
        assert_eq!(list.members.len(), 2);
        assert_eq!(list.members[0].id, MemberId(10276657743932975437));
        assert_eq!(list.members[0].id.to_string(), "8e9e05c52164694d");
        assert!(list.members[0].started() && !list.members[0].is_learner);
        assert!(!list.members[1].started() && list.members[1].is_learner);
        assert!(list.members[1].client_urls.is_empty());
    }

    #[test]
    fn ids_go_out_as_decimal_strings() {
        let body = serde_json::to_string(&IdRequest {
            id: MemberId(u64::MAX),
        })
        .unwrap();
        assert_eq!(body, r#"{"ID":"18446744073709551615"}"#);
        let number: Member =
            serde_json::from_str(r#"{"ID":7,"peerURLs":["https://a:2380"]}"#).unwrap();
        assert_eq!(number.id, MemberId(7));
        assert!("zz".parse::<MemberId>().is_err());
        assert_eq!("2a".parse::<MemberId>().unwrap(), MemberId(42));
    }

    #[test]
    fn initial_cluster_names_the_started_members_and_the_newcomer() {
        let member = |id, name: &str, peer: &str| Member {
            id: MemberId(id),
            name: name.into(),
            peer_urls: vec![peer.into()],
            client_urls: vec![],
            is_learner: false,
        };
        let members = [
            member(2, "n2", "https://10.0.0.2:2380"),
            member(1, "n1", "https://10.0.0.1:2380"),
            // The newcomer as the add returned it: no name yet.
            member(3, "", "https://10.0.0.3:2380"),
        ];
        assert_eq!(
            initial_cluster(&members, "n3", "https://10.0.0.3:2380"),
            "n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380,n3=https://10.0.0.3:2380"
        );
        // Another newcomer, not started: under its ID, so etcd's member count matches.
        let mut more = members.to_vec();
        more.push(member(255, "", "https://10.0.0.4:2380"));
        assert_eq!(
            initial_cluster(&more, "n3", "https://10.0.0.3:2380"),
            "ff=https://10.0.0.4:2380,n1=https://10.0.0.1:2380,n2=https://10.0.0.2:2380,n3=https://10.0.0.3:2380"
        );
        assert_eq!(
            find_by_peer_url(&members, "https://10.0.0.2:2380").map(|m| m.id),
            Some(MemberId(2))
        );
    }
}
