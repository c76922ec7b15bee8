//! The poster: takes the queued drafts and posts each as a core/v1 Event the way the kubelet's
//! recorder does (`source.component: kubelet`, `source.host: <node>`, name `<pod>.<unix nanos in
//! hex>`), or raises the count of the identical Event it posted before. Drafts wait while the API
//! server is away, up to [`EXPIRE`]; an Event the API server refuses is dropped.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;

use super::correlate::{Correlator, Decision, Key, Posted};
use super::{Queue, Queued};
use crate::node::objects::trim_nanos;
use crate::node::sync::bounded;
use crate::runtime::logs::cri::rfc3339_nano;

/// How long a draft may wait for the API server: long enough for the API server's own start at
/// `boot init` on a slow host (the kubelet's broadcaster gives up on an event after 12 tries 10 s
/// apart).
pub const EXPIRE: Duration = Duration::from_secs(300);
/// Between tries while the API server does not answer.
const RETRY: Duration = Duration::from_secs(5);

enum Outcome {
    Posted,
    /// Refused by the API server, or over the rate: not tried again.
    Dropped,
    /// No answer: kept for the next try.
    Unreachable,
}

/// Runs until the node sync is gone. `api` holds a client while the sync reaches the API server.
pub async fn post(queue: Arc<Queue>, mut api: watch::Receiver<Option<kube::Client>>, node: String) {
    let mut correlator = Correlator::default();
    loop {
        let client = api.borrow_and_update().clone();
        let mut kept = VecDeque::new();
        let mut unreachable = false;
        for item in queue.take() {
            if item.queued.elapsed() > EXPIRE {
                queue.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let (Some(client), false) = (&client, unreachable) else {
                kept.push_back(item);
                continue;
            };
            match post_one(client, &mut correlator, &node, &item).await {
                Outcome::Posted => queue.posted.fetch_add(1, Ordering::Relaxed),
                Outcome::Dropped => queue.dropped.fetch_add(1, Ordering::Relaxed),
                Outcome::Unreachable => {
                    unreachable = true;
                    kept.push_back(item);
                    continue;
                }
            };
        }
        let waiting = !kept.is_empty();
        queue.put_back(kept);
        tokio::select! {
            _ = queue.wake.notified() => {}
            changed = api.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(RETRY), if waiting => {}
        }
    }
}

async fn post_one(
    client: &kube::Client,
    correlator: &mut Correlator,
    node: &str,
    item: &Queued,
) -> Outcome {
    let draft = &item.draft;
    let key = Key {
        namespace: draft.namespace.clone(),
        pod: draft.pod.clone(),
        uid: draft.static_uid.clone(),
        field_path: draft.field_path.clone(),
        kind: draft.kind.as_str(),
        reason: draft.reason,
        message: draft.message.clone(),
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &draft.namespace);
    let at = trim_nanos(&rfc3339_nano(item.at));
    let what = format!("event {} for pod {}", draft.reason, draft.pod);
    match correlator.decide(&key, Instant::now()) {
        Decision::Limited => Outcome::Dropped,
        Decision::Update { posted, count } => {
            let patch = json!({"count": count, "lastTimestamp": at, "message": draft.message});
            let result = bounded(
                &what,
                events.patch(&posted.name, &PatchParams::default(), &Patch::Merge(&patch)),
            )
            .await;
            match result {
                Ok(_) => {
                    correlator.posted(&key, Posted { count, ..posted });
                    Outcome::Posted
                }
                // Expired (the API server keeps events for an hour): post it afresh.
                Err(e) if e.is_not_found() => {
                    correlator.forget(&key);
                    create(&events, correlator, node, item, key, &at, &what).await
                }
                Err(e) => outcome_of(e),
            }
        }
        Decision::Create => create(&events, correlator, node, item, key, &at, &what).await,
    }
}

async fn create(
    events: &Api<Event>,
    correlator: &mut Correlator,
    node: &str,
    item: &Queued,
    key: Key,
    at: &str,
    what: &str,
) -> Outcome {
    let nanos = item
        .at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let name = format!("{}.{nanos:x}", key.pod);
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": key.namespace},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": key.namespace,
            "name": key.pod,
            "uid": key.uid,
            "fieldPath": key.field_path,
        },
        "reason": key.reason,
        "message": key.message,
        "type": key.kind,
        "source": {"component": "kubelet", "host": node},
        "reportingComponent": "kubelet",
        "reportingInstance": node,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
    });
    let Ok(event) = serde_json::from_value::<Event>(event) else {
        return Outcome::Dropped;
    };
    match bounded(what, events.create(&PostParams::default(), &event)).await {
        Ok(_) => {
            correlator.posted(
                &key,
                Posted {
                    name,
                    count: 1,
                    first: at.to_string(),
                },
            );
            Outcome::Posted
        }
        Err(e) => outcome_of(e),
    }
}

fn outcome_of(error: crate::node::sync::Failed) -> Outcome {
    if error.is_refusal() {
        Outcome::Dropped
    } else {
        Outcome::Unreachable
    }
}
