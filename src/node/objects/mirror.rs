//! A static pod's mirror pod (reference §14) and its status (§21), and the status of a pod the
//! node refuses (§20). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use super::{kept_transition, trim_nanos, CONFIG_HASH, CONFIG_MIRROR, CONFIG_SEEN, CONFIG_SOURCE};
use crate::agent::source::StaticPod;
use crate::agent::status::{self, ContainerState, PodPhase, PodStatus};

/// The mirror pod of `pod`: the manifest's pod under its kubelet name, bound to the node, with the
/// kubelet's annotations and exactly one owner, the Node (no `blockOwnerDeletion`).
pub fn mirror_pod(pod: &StaticPod, node: &str, node_uid: &str, seen: &str) -> Pod {
    let mut mirror = pod.pod.clone();
    let meta = &mut mirror.metadata;
    meta.name = Some(pod.full_name.to_string());
    meta.namespace = Some(pod.namespace.to_string());
    meta.uid = None;
    meta.resource_version = None;
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(CONFIG_HASH.into(), pod.uid.to_string());
    annotations.insert(CONFIG_MIRROR.into(), pod.uid.to_string());
    annotations.insert(CONFIG_SOURCE.into(), "file".into());
    annotations.insert(CONFIG_SEEN.into(), seen.into());
    meta.owner_references = Some(vec![
        k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
            api_version: "v1".into(),
            kind: "Node".into(),
            name: node.into(),
            uid: node_uid.into(),
            controller: Some(true),
            block_owner_deletion: None,
        },
    ]);
    let spec = mirror.spec.get_or_insert_with(Default::default);
    spec.node_name = Some(node.into());
    spec.tolerations
        .get_or_insert_with(Vec::new)
        .push(k8s_openapi::api::core::v1::Toleration {
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            ..Default::default()
        });
    mirror.status = None;
    mirror
}

/// Whether `existing` is the current mirror of the static pod with hash `hash`: the kubelet
/// compares only the hash (other edits survive) and recreates a mirror being deleted.
pub fn mirror_is_current(existing: &Pod, hash: &str) -> bool {
    existing.metadata.deletion_timestamp.is_none()
        && existing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(CONFIG_MIRROR))
            .is_some_and(|h| h == hash)
}

pub fn is_mirror(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(CONFIG_MIRROR))
}

/// The mirror pod's `status` from the agent's view of the static pod. Transition times and
/// `startTime` are kept from `previous` (the status last posted).
pub fn mirror_status(
    pod: &StaticPod,
    status: &PodStatus,
    node_ip: &str,
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let phase = match status.phase {
        PodPhase::Pending => "Pending",
        PodPhase::Running => "Running",
        PodPhase::Succeeded => "Succeeded",
        PodPhase::Failed => "Failed",
    };
    let unready: Vec<&str> = status
        .containers
        .iter()
        .filter(|c| !c.ready)
        .map(|c| c.name.as_str())
        .collect();
    let initialized = status
        .init_containers
        .iter()
        .all(|c| matches!(&c.state, ContainerState::Terminated(t) if t.exit_code == Some(0)));
    let condition = |kind: &str, ok: bool, reason: &str, message: String| {
        let state = if ok { "True" } else { "False" };
        let mut c = json!({
            "type": kind,
            "status": state,
            "lastTransitionTime": kept_transition(previous, kind, state, now),
        });
        if !ok {
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        c
    };
    let unready_message = format!("containers with unready status: [{}]", unready.join(" "));
    let conditions = vec![
        condition("PodReadyToStartContainers", true, "", String::new()),
        condition(
            "Initialized",
            initialized,
            "ContainersNotInitialized",
            "containers with incomplete status".into(),
        ),
        condition(
            "Ready",
            unready.is_empty(),
            "ContainersNotReady",
            unready_message.clone(),
        ),
        condition(
            "ContainersReady",
            unready.is_empty(),
            "ContainersNotReady",
            unready_message,
        ),
        condition("PodScheduled", true, "", String::new()),
    ];
    let host_network = pod.host_network();
    let start_time = previous
        .and_then(|p| p["startTime"].as_str())
        .unwrap_or(now)
        .to_string();
    let mut out = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": node_ip,
        "hostIPs": [{"ip": node_ip}],
        "startTime": start_time,
        "qosClass": qos_class(pod),
        "initContainerStatuses": container_statuses(pod.init_containers(), &status.init_containers),
        "containerStatuses": container_statuses(pod.containers(), &status.containers),
    });
    if host_network {
        out["podIP"] = json!(node_ip);
        out["podIPs"] = json!([{"ip": node_ip}]);
    }
    out
}

fn container_statuses(specs: &[Container], statuses: &[status::ContainerStatus]) -> Vec<Value> {
    statuses
        .iter()
        .map(|c| {
            let image = specs
                .iter()
                .find(|s| s.name == c.name)
                .and_then(|s| s.image.clone())
                .unwrap_or_default();
            let mut out = json!({
                "name": c.name,
                "state": container_state(&c.state),
                "lastState": c.last_state.as_ref().map(terminated).map(|t| json!({"terminated": t})).unwrap_or(json!({})),
                "ready": c.ready,
                "started": c.started,
                "restartCount": c.restart_count,
                "image": image,
                // Empty for the process runtime: host binaries have no image digest.
                "imageID": c.image_id.clone().unwrap_or_default(),
            });
            if let ContainerState::Running { pid, .. } = c.state {
                out["containerID"] = json!(format!("boot-process://{pid}"));
            }
            out
        })
        .collect()
}

fn container_state(state: &ContainerState) -> Value {
    match state {
        ContainerState::Waiting {
            reason, message, ..
        } => {
            let mut w = json!({"reason": reason});
            if let Some(m) = message {
                w["message"] = json!(m);
            }
            json!({"waiting": w})
        }
        ContainerState::Running { started_at, .. } => {
            json!({"running": {"startedAt": trim_nanos(started_at)}})
        }
        ContainerState::Terminated(t) => json!({"terminated": terminated(t)}),
    }
}

/// A termination as the API shows it: an exit code always (128 + signal, or 137 with reason
/// `ContainerStatusUnknown` when unknown, as the kubelet reports a lost container).
fn terminated(t: &status::Terminated) -> Value {
    let (code, reason) = match (t.exit_code, t.signal) {
        (Some(code), _) => (code, t.reason.clone()),
        (None, Some(signal)) => (128 + signal, t.reason.clone()),
        (None, None) => (137, "ContainerStatusUnknown".to_string()),
    };
    let mut out = json!({
        "exitCode": code,
        "reason": reason,
        "startedAt": trim_nanos(&t.started_at),
        "finishedAt": trim_nanos(&t.finished_at),
    });
    if let Some(message) = &t.message {
        out["message"] = json!(message);
    }
    out
}

/// `qos.GetPodQOS`: cpu and memory of every container, init containers included.
pub fn qos_class(pod: &StaticPod) -> &'static str {
    let containers: Vec<&Container> = pod
        .init_containers()
        .iter()
        .chain(pod.containers())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in containers {
        let resources = c.resources.clone().unwrap_or_default();
        let requests = resources.requests.unwrap_or_default();
        let limits = resources.limits.unwrap_or_default();
        for name in ["cpu", "memory"] {
            let request = requests.get(name).or(limits.get(name));
            let limit = limits.get(name);
            any |= request.is_some() || limit.is_some();
            guaranteed &= limit.is_some() && request == limit;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// The status patch that refuses a pod bound to this node (`rejectPod`): phase Failed, the
/// `OutOfpods` reason of the kubelet's admission (allocatable `pods` is the static pods it runs).
pub fn rejected_status(static_pods: usize) -> Value {
    json!({
        "status": {
            "phase": "Failed",
            "reason": "OutOfpods",
            "message": format!(
                "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {static_pods}, capacity: {static_pods}"
            ),
        }
    })
}
