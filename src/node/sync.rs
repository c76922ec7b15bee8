//! The node's sync with the API server, as the kubelet's node status, lease and status managers
//! and its mirror-pod reconciliation do it (reference §14–17, §20): one task, one loop.
//!
//! - Registers the Node once the API server answers (create, or adopt the existing one).
//! - Renews the Lease `kube-node-lease/<node>` every 10 s (one update; get/create only when that
//!   fails), and posts the Node's status every 10 s when it changed, else every 5 minutes.
//! - Lists and watches the pods bound to the node (`spec.nodeName=<node>`, what the Node
//!   authorizer allows), and on every change of either side reconciles: a mirror pod per static
//!   pod (created, replaced when its hash differs or it is being deleted, status patched when it
//!   changed), orphaned mirrors deleted, any other pod bound to the node rejected.
//! - Any failure: the error is kept for `boot status`, the loop backs off (100 ms doubling to
//!   7 s, the kubelet's registration back-off) and starts again with a fresh list.
//!
//! It only reads what the supervisor publishes and never blocks it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::{Stream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent};
use kube::Client;
use serde_json::{json, Value};
use tokio::sync::watch;

use super::host_info::{self, HostInfo};
use super::objects::{self, NODE_LEASE_NAMESPACE};
use super::NodeOptions;
use crate::agent::published::{Heartbeat, Published};
use crate::agent::status::ApiSyncStatus;
use crate::runtime::logs::cri::rfc3339_nano;

/// Every call but the watch is bounded by this.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The server ends a watch after this; the client's read timeout is longer.
const WATCH_SECONDS: u32 = 240;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The kubelet's registration back-off cap.
const MAX_BACKOFF: Duration = Duration::from_secs(7);
/// The kubelet's lease renew interval (0.25 × 40 s).
const LEASE_RENEW: Duration = Duration::from_secs(10);

type PodEvents = std::pin::Pin<Box<dyn Stream<Item = kube::Result<WatchEvent<Pod>>> + Send>>;

/// An API failure in one step, said in one line, with the HTTP status when the API server
/// answered.
#[derive(Debug)]
pub(in crate::node) struct Failed {
    pub message: String,
    pub code: Option<u16>,
}

impl Failed {
    fn new(message: String) -> Failed {
        Failed {
            message,
            code: None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code == Some(404)
    }

    pub fn is_conflict(&self) -> bool {
        self.code == Some(409)
    }

    /// The API server answered and refused: trying the same request again will not help.
    pub fn is_refusal(&self) -> bool {
        self.code
            .is_some_and(|c| (400..500).contains(&c) && c != 408 && c != 429)
    }
}

fn failed(what: &str) -> impl Fn(kube::Error) -> Failed + '_ {
    move |e| Failed {
        message: format!("{what}: {}", crate::kubeapi::describe(&e)),
        code: match &e {
            kube::Error::Api(response) => Some(response.code),
            _ => None,
        },
    }
}

/// API requests made by this process's node sync (for `boot status -o json` and the
/// requests-per-minute figure in docs/src/performance.md).
static REQUESTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(in crate::node) async fn bounded<T>(
    what: &str,
    call: impl std::future::Future<Output = kube::Result<T>>,
) -> Result<T, Failed> {
    REQUESTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(failed(what)),
        Err(_) => Err(Failed::new(format!(
            "{what}: no answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

/// The node sync's side of the event poster: the client while the API server answers, and the
/// counts.
pub struct EventsLink {
    pub api: watch::Sender<Option<Client>>,
    pub queue: Arc<super::events::Queue>,
}

pub struct NodeSync {
    options: Arc<NodeOptions>,
    events_link: EventsLink,
    states: watch::Receiver<Arc<Published>>,
    api_sync: watch::Sender<ApiSyncStatus>,
    /// The supervisor loop's last turn: the node's PLEG health.
    heartbeat: Heartbeat,
    client: Option<Client>,
    /// `kubelet.conf`'s `server:`, for `boot status`.
    server: String,
    node_uid: Option<String>,
    posted_node_status: Option<Value>,
    node_status_posted_at: Option<Instant>,
    lease_version: Option<String>,
    /// Pods bound to this node, by `namespace/name`, as the watch last said.
    pods: BTreeMap<String, Pod>,
    resource_version: String,
    events: Option<PodEvents>,
    /// The status last posted per mirror pod UID, and when.
    posted_mirror_status: BTreeMap<String, (Value, Instant)>,
    /// When each static pod (by hash) was first seen: `config.seen`.
    seen: BTreeMap<String, String>,
    /// Pods already rejected (by UID).
    rejected: BTreeSet<String>,
    host: HostInfo,
    last_error: Option<String>,
    last_sync: Option<String>,
}

mod pods;

impl NodeSync {
    pub fn new(
        options: Arc<NodeOptions>,
        states: watch::Receiver<Arc<Published>>,
        api_sync: watch::Sender<ApiSyncStatus>,
        heartbeat: Heartbeat,
        events_link: EventsLink,
    ) -> NodeSync {
        NodeSync {
            events_link,
            host: host_info::read(&options.kubelet_dir),
            options,
            states,
            api_sync,
            heartbeat,
            client: None,
            server: String::new(),
            node_uid: None,
            posted_node_status: None,
            node_status_posted_at: None,
            lease_version: None,
            pods: BTreeMap::new(),
            resource_version: String::new(),
            events: None,
            posted_mirror_status: BTreeMap::new(),
            seen: BTreeMap::new(),
            rejected: BTreeSet::new(),
            last_error: None,
            last_sync: None,
        }
    }

    /// Runs until the task is aborted.
    pub async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        let mut lease = tokio::time::interval(LEASE_RENEW);
        let mut status = tokio::time::interval(self.options.status_update);
        for tick in [&mut lease, &mut status] {
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let step = self.step(&mut lease, &mut status).await;
            match step {
                Ok(()) => {
                    backoff = FIRST_BACKOFF;
                }
                Err(Failed { message: error, .. }) => {
                    if self.last_error.as_ref() != Some(&error) && self.options.print_events {
                        println!("[agent] API sync: {error} (retrying)");
                    }
                    self.last_error = Some(error);
                    self.events = None;
                    self.publish_client(None);
                    self.publish_sync_state(0);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Brings everything up to date, then waits for the next thing to do.
    async fn step(
        &mut self,
        lease: &mut tokio::time::Interval,
        status: &mut tokio::time::Interval,
    ) -> Result<(), Failed> {
        let client = self.client().await?;
        if self.node_uid.is_none() {
            self.register(&client).await?;
            self.post_node_status(&client, true).await?;
            self.renew_lease(&client).await?;
        }
        if self.events.is_none() {
            self.list_pods(&client).await?;
            self.watch_pods(&client).await?;
        }
        let in_sync = self.reconcile(&client).await?;
        self.publish_client(Some(&client));
        if self.last_error.take().is_some() && self.options.print_events {
            println!("[agent] API sync: in sync again");
        }
        self.publish_sync_state(in_sync);
        let events = self.events.as_mut().expect("watching");
        tokio::select! {
            changed = self.states.changed() => {
                if changed.is_err() {
                    // The supervisor is gone: the agent is stopping.
                    std::future::pending::<()>().await;
                }
            }
            event = events.next() => self.on_event(event)?,
            _ = lease.tick() => self.renew_lease(&client).await?,
            _ = status.tick() => {
                self.host = host_info::read(&self.options.kubelet_dir);
                self.post_node_status(&client, false).await?;
            }
        }
        Ok(())
    }

    async fn client(&mut self) -> Result<Client, Failed> {
        if let Some(client) = &self.client {
            return Ok(client.clone());
        }
        // The read timeout must outlast a watch; every other call is bounded by CALL_TIMEOUT.
        let caller = crate::kubeapi::Caller::from_file(
            &self.options.kubeconfig,
            Duration::from_secs(u64::from(WATCH_SECONDS) + 30),
        )
        .await
        .map_err(|e| Failed::new(e.to_string()))?;
        self.client = Some(caller.client.clone());
        self.server = caller.server.clone();
        Ok(caller.client)
    }

    /// Gives the event poster the client while the API server answers.
    fn publish_client(&self, client: Option<&Client>) {
        self.events_link.api.send_if_modified(|current| {
            let changed = current.is_some() != client.is_some();
            if changed {
                *current = client.cloned();
            }
            changed
        });
    }

    fn publish_sync_state(&mut self, mirrors_in_sync: u32) {
        let published = self.states.borrow().clone();
        let state = ApiSyncStatus {
            server: String::new(),
            node_registered: self.node_uid.is_some(),
            mirror_pods: mirrors_in_sync,
            static_pods: published
                .status
                .pods
                .iter()
                .filter(|p| !p.terminating)
                .count() as u32,
            last_sync: None,
            last_error: self.last_error.clone(),
            requests: 0,
            events_posted: 0,
            events_dropped: 0,
        };
        if state.in_sync() {
            self.last_sync = Some(rfc3339_nano(SystemTime::now()));
        }
        let state = ApiSyncStatus {
            server: self.server.clone(),
            last_sync: self.last_sync.clone(),
            requests: REQUESTS.load(std::sync::atomic::Ordering::Relaxed),
            events_posted: self.events_link.queue.posted(),
            events_dropped: self.events_link.queue.dropped(),
            ..state
        };
        self.api_sync.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    /// `registerWithAPIServer`: create the Node, or adopt the one that exists.
    async fn register(&mut self, client: &Client) -> Result<(), Failed> {
        let nodes: Api<Node> = Api::all(client.clone());
        let name = &self.options.identity.name;
        let existing = bounded("get Node", nodes.get_opt(name)).await?;
        let node = match existing {
            Some(node) => node,
            None => {
                let object: Node =
                    serde_json::from_value(objects::node(&self.options.identity, &self.host.arch))
                        .map_err(|e| Failed::new(format!("the Node object: {e}")))?;
                match bounded("create Node", nodes.create(&PostParams::default(), &object)).await {
                    Ok(node) => {
                        if self.options.print_events {
                            println!("[agent] Registered Node {name} with the API server");
                        }
                        node
                    }
                    Err(_) => bounded("get Node", nodes.get(name)).await?,
                }
            }
        };
        self.node_uid = node.metadata.uid;
        self.posted_node_status = None;
        Ok(())
    }

    /// Posts the Node's status when it changed, or when the report interval passed (`force`).
    async fn post_node_status(&mut self, client: &Client, force: bool) -> Result<(), Failed> {
        let now = rfc3339_nano(SystemTime::now());
        let now = objects::trim_nanos(&now);
        let published = self.states.borrow().clone();
        let problems = objects::node_problems(self.heartbeat.since());
        let status = objects::node_status(
            &self.options.identity,
            &self.host,
            &published.status,
            &problems,
            self.posted_node_status.as_ref(),
            &now,
        );
        let changed = self
            .posted_node_status
            .as_ref()
            .is_none_or(|p| objects::without_heartbeats(p) != objects::without_heartbeats(&status));
        let due = self
            .node_status_posted_at
            .is_none_or(|at| at.elapsed() >= self.options.status_report);
        if !(force || changed || due) {
            return Ok(());
        }
        let nodes: Api<Node> = Api::all(client.clone());
        let patch = json!({ "status": status });
        let result = bounded(
            "update Node status",
            nodes.patch_status(
                &self.options.identity.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            ),
        )
        .await;
        if let Err(e) = result {
            // A Node deleted behind our back is registered again.
            self.node_uid = None;
            return Err(e);
        }
        self.posted_node_status = Some(status);
        self.node_status_posted_at = Some(Instant::now());
        Ok(())
    }

    /// One update with the last known version; get or create only when that fails.
    async fn renew_lease(&mut self, client: &Client) -> Result<(), Failed> {
        let Some(node_uid) = self.node_uid.clone() else {
            return Ok(());
        };
        let leases: Api<Lease> = Api::namespaced(client.clone(), NODE_LEASE_NAMESPACE);
        let name = self.options.identity.name.clone();
        let renew = micro_time(SystemTime::now());
        if let Some(version) = self.lease_version.clone() {
            let lease: Lease =
                serde_json::from_value(objects::lease(&name, &node_uid, &renew, Some(&version)))
                    .map_err(|e| Failed::new(format!("the Lease object: {e}")))?;
            if let Ok(updated) = bounded(
                "renew Lease",
                leases.replace(&name, &PostParams::default(), &lease),
            )
            .await
            {
                self.lease_version = updated.metadata.resource_version;
                return Ok(());
            }
        }
        let current = bounded("get Lease", leases.get_opt(&name)).await?;
        let version = current.and_then(|l| l.metadata.resource_version);
        let lease: Lease =
            serde_json::from_value(objects::lease(&name, &node_uid, &renew, version.as_deref()))
                .map_err(|e| Failed::new(format!("the Lease object: {e}")))?;
        let stored = match version {
            Some(_) => {
                bounded(
                    "renew Lease",
                    leases.replace(&name, &PostParams::default(), &lease),
                )
                .await?
            }
            None => {
                bounded(
                    "create Lease",
                    leases.create(&PostParams::default(), &lease),
                )
                .await?
            }
        };
        self.lease_version = stored.metadata.resource_version;
        Ok(())
    }
}

/// `metav1.MicroTime`: microseconds, `2006-01-02T15:04:05.000000Z07:00`.
pub fn micro_time(time: SystemTime) -> String {
    let nano = rfc3339_nano(time);
    let (head, fraction) = match nano.trim_end_matches('Z').split_once('.') {
        Some((head, fraction)) => (head.to_string(), fraction.to_string()),
        None => (nano.trim_end_matches('Z').to_string(), String::new()),
    };
    format!("{head}.{:0<6}Z", &fraction[..fraction.len().min(6)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_has_six_digits() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202);
        assert_eq!(micro_time(t), "2016-10-06T00:17:09.669794Z");
        let t = SystemTime::UNIX_EPOCH + Duration::new(1_475_713_029, 0);
        assert_eq!(micro_time(t), "2016-10-06T00:17:09.000000Z");
    }
}
