//! The API objects the agent writes as the kubelet writes them, built as JSON (pure: no client, no
//! host): the Node (reference §16), its Lease (§17), a static pod's mirror pod (§14) and its status
//! (§21), and the status of a pod the node refuses (§20).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};

use super::host_info::HostInfo;
use crate::agent::source::StaticPod;
use crate::agent::status::{self, AgentStatus, ContainerState, PodPhase, PodStatus};

pub const CONFIG_MIRROR: &str = "kubernetes.io/config.mirror";
pub const CONFIG_HASH: &str = "kubernetes.io/config.hash";
pub const CONFIG_SOURCE: &str = "kubernetes.io/config.source";
pub const CONFIG_SEEN: &str = "kubernetes.io/config.seen";
/// kubeadm's `LabelNodeRoleControlPlane` and `LabelExcludeFromExternalLB`.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";
pub const EXCLUDE_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// `coordination.k8s.io/v1` Lease duration (`NodeLeaseDurationSeconds`, 40 s).
pub const LEASE_DURATION_SECONDS: i32 = 40;
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// Who the node is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeIdentity {
    pub name: String,
    /// The advertise address: `InternalIP`.
    pub address: String,
    pub hostname: String,
    pub port: u16,
    /// `kubeletVersion`: the cluster's version with boot's as build metadata.
    pub version: String,
}

/// The Node as first registered: the kubelet's labels, the control-plane taint (registered with
/// it, so nothing is scheduled before `mark-control-plane` runs) and the attach-detach annotation.
pub fn node(identity: &NodeIdentity, arch: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": identity.name,
            "labels": {
                "kubernetes.io/hostname": identity.hostname,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
            },
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {"taints": [control_plane_taint()]},
    })
}

/// `node-role.kubernetes.io/control-plane:NoSchedule`.
pub fn control_plane_taint() -> Value {
    json!({"key": CONTROL_PLANE_LABEL, "effect": "NoSchedule"})
}

/// One node condition: healthy or not, with the kubelet's reasons.
struct Condition {
    kind: &'static str,
    ok: bool,
    /// The status string when healthy (`False` for the pressures, `True` for Ready).
    healthy: &'static str,
    reason: (&'static str, &'static str),
    message: (String, String),
}

/// `status` of the Node: conditions (transition times kept from `previous` while a condition's
/// status stays), addresses, capacity and allocatable, nodeInfo, the kubelet endpoint.
pub fn node_status(
    identity: &NodeIdentity,
    host: &HostInfo,
    agent: &AgentStatus,
    previous: Option<&Value>,
    now: &str,
) -> Value {
    let unhealthy: Vec<String> = agent
        .pods
        .iter()
        .filter(|p| !p.healthy())
        .map(|p| format!("{}: {}", p.name, p.reason.as_deref().unwrap_or("not ready")))
        .collect();
    let conditions = [
        Condition {
            kind: "MemoryPressure",
            ok: !host.memory_pressure,
            healthy: "False",
            reason: ("KubeletHasSufficientMemory", "KubeletHasInsufficientMemory"),
            message: (
                "kubelet has sufficient memory available".into(),
                "kubelet has insufficient memory available".into(),
            ),
        },
        Condition {
            kind: "DiskPressure",
            ok: !host.disk_pressure,
            healthy: "False",
            reason: ("KubeletHasNoDiskPressure", "KubeletHasDiskPressure"),
            message: (
                "kubelet has no disk pressure".into(),
                "kubelet has disk pressure".into(),
            ),
        },
        Condition {
            kind: "PIDPressure",
            ok: !host.pid_pressure,
            healthy: "False",
            reason: ("KubeletHasSufficientPID", "KubeletHasInsufficientPID"),
            message: (
                "kubelet has sufficient PID available".into(),
                "kubelet has insufficient PID available".into(),
            ),
        },
        Condition {
            kind: "Ready",
            ok: unhealthy.is_empty(),
            healthy: "True",
            reason: ("KubeletReady", "KubeletNotReady"),
            message: (
                "kubelet is posting ready status".into(),
                format!("static pods not ready: {}", unhealthy.join("; ")),
            ),
        },
    ];
    let conditions: Vec<Value> = conditions
        .iter()
        .map(|c| {
            let status = if c.ok {
                c.healthy
            } else if c.healthy == "True" {
                "False"
            } else {
                "True"
            };
            let (reason, message) = if c.ok {
                (c.reason.0, &c.message.0)
            } else {
                (c.reason.1, &c.message.1)
            };
            json!({
                "type": c.kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": kept_transition(previous, c.kind, status, now),
            })
        })
        .collect();
    let static_pods = agent.pods.len().to_string();
    json!({
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": identity.address},
            {"type": "Hostname", "address": identity.hostname},
        ],
        "capacity": {
            "cpu": host.cpus.to_string(),
            "memory": format!("{}Ki", host.memory_bytes / 1024),
            "ephemeral-storage": format!("{}Ki", host.disk_bytes / 1024),
            "pods": static_pods,
        },
        "allocatable": {
            "cpu": host.cpus.to_string(),
            "memory": format!("{}Ki", host.memory_bytes.saturating_sub(super::host_info::MEMORY_EVICTION) / 1024),
            "ephemeral-storage": format!("{}Ki", host.disk_bytes / 10 * 9 / 1024),
            // Exactly the static pods it runs: the scheduler never finds room for a workload.
            "pods": static_pods,
        },
        "daemonEndpoints": {"kubeletEndpoint": {"Port": identity.port}},
        "nodeInfo": {
            "machineID": host.machine_id,
            "systemUUID": host.system_uuid,
            "bootID": host.boot_id,
            "kernelVersion": host.kernel_version,
            "osImage": host.os_image,
            "containerRuntimeVersion": format!("boot-process://{}", env!("CARGO_PKG_VERSION")),
            "kubeletVersion": identity.version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": host.arch,
        },
    })
}

/// The condition's previous `lastTransitionTime` if its status did not change, else `now`.
fn kept_transition(previous: Option<&Value>, kind: &str, status: &str, now: &str) -> String {
    previous
        .and_then(|p| p["conditions"].as_array())
        .and_then(|list| list.iter().find(|c| c["type"] == kind))
        .filter(|c| c["status"] == status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now)
        .to_string()
}

/// A status with every heartbeat time blanked: what "changed" compares.
pub fn without_heartbeats(status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(list) = status["conditions"].as_array_mut() {
        for c in list {
            c["lastHeartbeatTime"] = Value::Null;
        }
    }
    status
}

/// Whether `actual` already says everything `desired` says (objects: every key of `desired`
/// matches; arrays: same length, element by element; `null`, `""`, `[]` and `{}` in `desired`
/// also match a missing value, as the API server omits empty fields).
pub fn says_all_of(actual: &Value, desired: &Value) -> bool {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    match (desired, actual) {
        (d, Value::Null) => empty(d),
        (Value::Object(d), Value::Object(a)) => d
            .iter()
            .all(|(k, v)| says_all_of(a.get(k).unwrap_or(&Value::Null), v)),
        (Value::Array(d), Value::Array(a)) => {
            d.len() == a.len() && d.iter().zip(a).all(|(d, a)| says_all_of(a, d))
        }
        (d, a) => d == a,
    }
}

/// The node's Lease, renewed now, owned by the Node.
pub fn lease(
    node: &str,
    node_uid: &str,
    renew_time: &str,
    resource_version: Option<&str>,
) -> Value {
    let mut lease = json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": node,
            "namespace": NODE_LEASE_NAMESPACE,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}],
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": renew_time,
        },
    });
    if let Some(rv) = resource_version {
        lease["metadata"]["resourceVersion"] = json!(rv);
    }
    lease
}

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

/// `metav1.Time` has whole seconds: `2024-01-02T03:04:05.123Z` → `2024-01-02T03:04:05Z`.
pub fn trim_nanos(rfc3339: &str) -> String {
    match rfc3339.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => rfc3339.to_string(),
    }
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

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
