//! The API objects the agent writes as the kubelet writes them, built as JSON (pure: no client, no
//! host): the Node (reference §16), its Lease (§17), a static pod's mirror pod (§14) and its status
//! (§21), and the status of a pod the node refuses (§20).

use std::time::Duration;

use serde_json::{json, Value};

use super::host_info::HostInfo;
use crate::agent::status::AgentStatus;

mod mirror;

pub use mirror::{
    is_mirror, mirror_is_current, mirror_pod, mirror_status, qos_class, rejected_status,
};

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

/// The kubelet's PLEG `relistThreshold`: a supervisor loop silent this long makes the node
/// NotReady.
pub const PLEG_THRESHOLD: Duration = Duration::from_secs(180);

/// Why the node is not ready, in the kubelet's words; empty when it is. As the kubelet's `Ready`,
/// this is about the node (its runtime's loop), never about its pods: a static pod that is not
/// ready (startup probes after every init) shows in its mirror pod, not as a `not-ready` taint.
pub fn node_problems(supervisor_last_turn: Duration) -> Vec<String> {
    let mut problems = Vec::new();
    if supervisor_last_turn >= PLEG_THRESHOLD {
        problems.push(format!(
            "PLEG is not healthy: pleg was last seen active {}s ago; threshold is {}s",
            supervisor_last_turn.as_secs(),
            PLEG_THRESHOLD.as_secs()
        ));
    }
    problems
}

/// `status` of the Node: conditions (transition times kept from `previous` while a condition's
/// status stays; `Ready` from `problems`, see [`node_problems`]), addresses, capacity and
/// allocatable, nodeInfo, the kubelet endpoint.
pub fn node_status(
    identity: &NodeIdentity,
    host: &HostInfo,
    agent: &AgentStatus,
    problems: &[String],
    previous: Option<&Value>,
    now: &str,
) -> Value {
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
            ok: problems.is_empty(),
            healthy: "True",
            reason: ("KubeletReady", "KubeletNotReady"),
            message: ("kubelet is posting ready status".into(), problems.join(",")),
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
pub(crate) fn kept_transition(
    previous: Option<&Value>,
    kind: &str,
    status: &str,
    now: &str,
) -> String {
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

/// `metav1.Time` has whole seconds: `2024-01-02T03:04:05.123Z` → `2024-01-02T03:04:05Z`.
pub fn trim_nanos(rfc3339: &str) -> String {
    match rfc3339.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => rfc3339.to_string(),
    }
}

#[cfg(test)]
#[path = "objects_tests.rs"]
mod tests;
