//! Which events the kubelet would have posted between two states of a static pod, read from the
//! statuses the supervisor publishes (reasons and messages from `k/k pkg/kubelet/events` and
//! `kuberuntime_container.go`, `prober/worker.go`, `images/image_manager.go`). Pure.

use crate::agent::status::{ContainerState, ContainerStatus, PodStatus};

/// `v1.EventTypeNormal` or `v1.EventTypeWarning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event about a container of a static pod, before it is tied to the mirror pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The static pod's namespace and full name (`<name>-<node>`): the mirror pod's.
    pub namespace: String,
    pub pod: String,
    /// The static pod's UID (its `config.hash`): which mirror pod the event belongs to.
    pub static_uid: String,
    /// `spec.containers{name}` or `spec.initContainers{name}`.
    pub field_path: String,
    pub kind: EventType,
    pub reason: &'static str,
    pub message: String,
}

/// The events between `before` (`None`: the pod is new to the agent) and `after`.
pub fn changes(before: Option<&PodStatus>, after: &PodStatus) -> Vec<Draft> {
    let mut out = Vec::new();
    let lists = [
        (
            "initContainers",
            &after.init_containers,
            before.map(|b| &b.init_containers),
        ),
        (
            "containers",
            &after.containers,
            before.map(|b| &b.containers),
        ),
    ];
    for (list, now, then) in lists {
        for container in now.iter() {
            let previous = then.and_then(|t| t.iter().find(|c| c.name == container.name));
            for (kind, reason, message) in container_changes(after, previous, container) {
                out.push(Draft {
                    namespace: after.namespace.clone(),
                    pod: after.name.clone(),
                    static_uid: after.uid.clone(),
                    field_path: format!("spec.{list}{{{}}}", container.name),
                    kind,
                    reason,
                    message,
                });
            }
        }
    }
    out
}

fn container_changes(
    pod: &PodStatus,
    before: Option<&ContainerStatus>,
    now: &ContainerStatus,
) -> Vec<(EventType, &'static str, String)> {
    let name = &now.name;
    let image = now.image.clone().unwrap_or_default();
    let mut out = Vec::new();
    match (&now.state, before.map(|b| &b.state)) {
        // A new instance: the kubelet's Pulled (image runtimes only), Created, Started. An
        // adopted process was started by an earlier agent, which said so then.
        (
            ContainerState::Running {
                started_at,
                adopted: false,
                ..
            },
            previous,
        ) if !matches!(previous, Some(ContainerState::Running { started_at: s, .. }) if s == started_at) =>
        {
            if now.image_id.is_some() {
                out.push((
                    EventType::Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                ));
            }
            out.push((
                EventType::Normal,
                "Created",
                format!("Created container: {name}"),
            ));
            out.push((
                EventType::Normal,
                "Started",
                format!("Started container {name}"),
            ));
        }
        _ => {}
    }
    let stopping = |s: Option<&ContainerState>| match s {
        Some(ContainerState::Running { stopping, .. }) => stopping.clone(),
        _ => None,
    };
    if let (Some(why), None) = (
        stopping(Some(&now.state)),
        stopping(before.map(|b| &b.state)),
    ) {
        let message = match ["Liveness", "Startup"]
            .into_iter()
            .find(|kind| why.starts_with(&format!("{kind} probe failed")))
        {
            Some(kind) => format!(
                "Container {name} failed {} probe, will be restarted",
                kind.to_lowercase()
            ),
            None => format!("Stopping container {name}"),
        };
        out.push((EventType::Normal, "Killing", message));
    }
    let waiting = |s: Option<&ContainerState>| match s {
        Some(ContainerState::Waiting {
            reason, message, ..
        }) => Some((reason.clone(), message.clone().unwrap_or_default())),
        _ => None,
    };
    let before_waiting = waiting(before.map(|b| &b.state));
    if let Some((reason, message)) = waiting(Some(&now.state)) {
        // Once per entry into the state, or per restart spent in it.
        let entered = before_waiting.as_ref().map(|(r, _)| r) != Some(&reason)
            || before.is_some_and(|b| b.restart_count != now.restart_count);
        if entered {
            match reason.as_str() {
                "CrashLoopBackOff" => out.push((
                    EventType::Warning,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {name} in pod {}_{}({})",
                        pod.name, pod.namespace, pod.uid
                    ),
                )),
                "ImagePullBackOff" => out.push((
                    EventType::Normal,
                    "BackOff",
                    format!("Back-off pulling image \"{image}\""),
                )),
                "ErrImagePull" => out.push((
                    EventType::Warning,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {message}"),
                )),
                "CreateContainerError" | "RunContainerError" => {
                    out.push((EventType::Warning, "Failed", format!("Error: {message}")))
                }
                _ => {}
            }
        }
    }
    // Every failed probe run, as the prober's worker posts it.
    for probe in &now.probes {
        let failures_before = before
            .and_then(|b| b.probes.iter().find(|p| p.kind == probe.kind))
            .map_or(0, |p| p.consecutive_failures);
        if probe.result == "failure" && probe.consecutive_failures > failures_before {
            let mut kind = probe.kind.clone();
            if let Some(first) = kind.get_mut(..1) {
                first.make_ascii_uppercase();
            }
            out.push((
                EventType::Warning,
                "Unhealthy",
                format!(
                    "{kind} probe failed: {}",
                    probe.last_error.clone().unwrap_or_default()
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(restarts: u32, state: serde_json::Value, probes: serde_json::Value) -> PodStatus {
        serde_json::from_value(json!({
            "name": "etcd-n", "namespace": "kube-system", "uid": "u1", "manifest": "/m/etcd.yaml",
            "phase": "Running", "terminating": false, "ready": true, "network": "host",
            "restarts": restarts, "manifestError": null, "reason": null, "initContainers": [],
            "containers": [{
                "name": "etcd", "state": state, "ready": true, "started": true,
                "restartCount": restarts, "lastState": null, "probes": probes,
                "logPath": "/l", "image": "registry.k8s.io/etcd:3.6", "imageId": "etcd@sha256:ab",
            }],
        }))
        .unwrap()
    }

    fn running(started_at: &str, stopping: Option<&str>) -> serde_json::Value {
        json!({"state": "running", "pid": 7, "startedAt": started_at, "adopted": false, "stopping": stopping})
    }

    fn waiting(reason: &str) -> serde_json::Value {
        json!({"state": "waiting", "reason": reason, "message": "exit code 1", "backoffRemainingMs": 900})
    }

    fn reasons(drafts: &[Draft]) -> Vec<(&'static str, &str)> {
        drafts
            .iter()
            .map(|d| (d.reason, d.message.as_str()))
            .collect()
    }

    #[test]
    fn a_start_then_a_crash_loop_then_a_restart() {
        let creating = pod(0, waiting("ContainerCreating"), json!([]));
        let up = pod(0, running("t1", None), json!([]));
        let drafts = changes(Some(&creating), &up);
        assert_eq!(
            reasons(&drafts),
            [
                (
                    "Pulled",
                    "Container image \"registry.k8s.io/etcd:3.6\" already present on machine"
                ),
                ("Created", "Created container: etcd"),
                ("Started", "Started container etcd"),
            ]
        );
        assert_eq!(drafts[0].field_path, "spec.containers{etcd}");
        assert_eq!(drafts[0].pod, "etcd-n");
        // Nothing changed, nothing said.
        assert!(changes(Some(&up), &up).is_empty());
        let backoff = pod(1, waiting("CrashLoopBackOff"), json!([]));
        let drafts = changes(Some(&up), &backoff);
        assert_eq!(
            reasons(&drafts),
            [(
                "BackOff",
                "Back-off restarting failed container etcd in pod etcd-n_kube-system(u1)"
            )]
        );
        assert_eq!(drafts[0].kind, EventType::Warning);
        assert!(changes(Some(&backoff), &backoff).is_empty());
        let again = pod(1, running("t2", None), json!([]));
        assert_eq!(changes(Some(&backoff), &again).len(), 3);
    }

    #[test]
    fn probe_failures_and_the_restart_they_cause() {
        let probes = |failures: u32| {
            json!([{"kind": "liveness", "result": if failures > 0 { "failure" } else { "success" },
                    "lastError": "HTTP probe failed with statuscode: 500", "consecutiveFailures": failures}])
        };
        let healthy = pod(0, running("t1", None), probes(0));
        let failing = pod(0, running("t1", None), probes(1));
        assert_eq!(
            reasons(&changes(Some(&healthy), &failing)),
            [(
                "Unhealthy",
                "Liveness probe failed: HTTP probe failed with statuscode: 500"
            )]
        );
        let stopping = pod(
            0,
            running(
                "t1",
                Some("Liveness probe failed: HTTP probe failed with statuscode: 500"),
            ),
            probes(1),
        );
        assert_eq!(
            reasons(&changes(Some(&failing), &stopping)),
            [(
                "Killing",
                "Container etcd failed liveness probe, will be restarted"
            )]
        );
        let removed = pod(0, running("t1", Some("its manifest is gone")), probes(0));
        assert_eq!(
            reasons(&changes(Some(&healthy), &removed)),
            [("Killing", "Stopping container etcd")]
        );
    }

    #[test]
    fn an_adopted_process_is_not_started_again() {
        let adopted = pod(
            0,
            json!({"state": "running", "pid": 7, "startedAt": "t0", "adopted": true, "stopping": null}),
            json!([]),
        );
        assert!(changes(None, &adopted).is_empty());
        let pull = pod(0, waiting("ErrImagePull"), json!([]));
        assert_eq!(
            reasons(&changes(None, &pull)),
            [(
                "Failed",
                "Failed to pull image \"registry.k8s.io/etcd:3.6\": exit code 1"
            )]
        );
    }
}
