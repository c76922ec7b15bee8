//! What `boot init` waits for: every component's own health endpoint, polled directly with the
//! probe its manifest declares (readiness first, then startup, then liveness), and the agent's
//! view of its pod. Pure apart from [`Endpoint::check`].

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::agent::status::{AgentStatus, ContainerState, PodStatus};
use crate::probe::{self, ProbeAction, ProbeResult};

/// One component's health endpoint, taken from its manifest.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub component: String,
    pub action: ProbeAction,
}

impl Endpoint {
    /// The endpoint of the manifest at `path`; `None` if it declares no HTTP probe.
    pub fn from_manifest(path: &Path, default_host: &str) -> Option<Endpoint> {
        let pod: Pod = serde_yaml::from_slice(&std::fs::read(path).ok()?).ok()?;
        let component = pod.metadata.name.clone()?;
        let container = pod.spec?.containers.into_iter().next()?;
        let probe = [
            &container.readiness_probe,
            &container.startup_probe,
            &container.liveness_probe,
        ]
        .into_iter()
        .flatten()
        .next()?
        .clone();
        let action = ProbeAction::from_probe(&probe, &container, default_host).ok()?;
        Some(Endpoint { component, action })
    }

    /// One request, bounded by `timeout`, sent as `user_agent`.
    pub async fn check(&self, timeout: Duration, user_agent: &str) -> ProbeResult {
        probe::run(&self.action, timeout, &[], user_agent).await
    }
}

/// A component as the waiting line shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// No process yet (the agent has not started it, or it is between restarts).
    Waiting,
    /// Running, endpoint not healthy yet.
    Starting,
    Healthy,
    /// Restarted repeatedly and backing off: waiting longer would not help.
    CrashLooping,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentView {
    pub component: String,
    pub phase: Phase,
    pub restarts: u32,
    /// The endpoint's last answer, or the agent's reason.
    pub detail: Option<String>,
}

/// How many restarts in back-off make a crash loop worth stopping for.
pub const CRASH_LOOP_RESTARTS: u32 = 2;

/// Combines the agent's view of a pod with the direct health check of its endpoint.
pub fn view(
    component: &str,
    pod: Option<&PodStatus>,
    endpoint: Option<&ProbeResult>,
) -> ComponentView {
    let restarts = pod.map(|p| p.restarts).unwrap_or(0);
    let container = pod.and_then(|p| p.containers.first());
    let running = matches!(
        container.map(|c| &c.state),
        Some(ContainerState::Running { .. })
    );
    let backing_off = matches!(
        container.map(|c| &c.state),
        Some(ContainerState::Waiting { reason, .. }) if reason == "CrashLoopBackOff"
    );
    let endpoint_ok = endpoint.is_some_and(ProbeResult::passed);
    let phase = match () {
        // As kubeadm's wait: the component's own endpoint answers. The agent's readiness lags
        // behind by the probes' initialDelaySeconds and is not waited for.
        _ if running && endpoint_ok => Phase::Healthy,
        _ if backing_off && restarts >= CRASH_LOOP_RESTARTS => Phase::CrashLooping,
        _ if running => Phase::Starting,
        _ => Phase::Waiting,
    };
    let detail = match (&phase, endpoint) {
        (Phase::Healthy, _) => None,
        (_, Some(ProbeResult::Failure(error))) if running => Some(error.clone()),
        _ => pod.and_then(|p| p.reason.clone()),
    };
    ComponentView {
        component: component.to_string(),
        phase,
        restarts,
        detail,
    }
}

/// The pod of `component` in the agent's status.
pub fn pod_of<'a>(status: &'a AgentStatus, component: &str) -> Option<&'a PodStatus> {
    status.pod(component)
}

impl ComponentView {
    /// `kube-apiserver   starting   restarts 0   Get "https://…/readyz": connection refused`
    pub fn line(&self) -> String {
        let phase = match self.phase {
            Phase::Waiting => "waiting",
            Phase::Starting => "starting",
            Phase::Healthy => "healthy",
            Phase::CrashLooping => "crash-looping",
        };
        let mut line = format!(
            "{:<24} {:<13} restarts {}",
            self.component, phase, self.restarts
        );
        if let Some(detail) = &self.detail {
            line.push_str("   ");
            line.push_str(&truncate(detail, 100));
        }
        line
    }
}

fn truncate(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() <= max {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::status::{ContainerStatus, PodPhase};

    fn pod(state: ContainerState, ready: bool, restarts: u32) -> PodStatus {
        PodStatus {
            name: "etcd-n".into(),
            namespace: "kube-system".into(),
            uid: "u".into(),
            manifest: "/m/etcd.yaml".into(),
            phase: PodPhase::Running,
            terminating: false,
            ready,
            network: "host".into(),
            pod_ip: None,
            restarts,
            manifest_error: None,
            ignored_fields: vec![],
            reason: Some("back-off 20s restarting failed container etcd".into()),
            init_containers: vec![],
            containers: vec![ContainerStatus {
                name: "etcd".into(),
                state,
                ready,
                started: true,
                restart_count: restarts,
                last_state: None,
                probes: vec![],
                log_path: "/l".into(),
                image: None,
                image_id: None,
            }],
        }
    }

    fn running() -> ContainerState {
        ContainerState::Running {
            pid: 1,
            started_at: "t".into(),
            adopted: false,
            stopping: None,
        }
    }

    #[test]
    fn healthy_needs_a_running_process_and_its_endpoint() {
        let ok = ProbeResult::Success;
        assert_eq!(
            view("etcd", Some(&pod(running(), true, 0)), Some(&ok)).phase,
            Phase::Healthy
        );
        assert_eq!(
            view("etcd", Some(&pod(running(), false, 0)), Some(&ok)).phase,
            Phase::Healthy
        );
        let stopped = ContainerState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
            backoff_remaining_ms: None,
        };
        assert_eq!(
            view("etcd", Some(&pod(stopped, false, 0)), Some(&ok)).phase,
            Phase::Waiting
        );
        let refused = ProbeResult::Failure("connection refused".into());
        let starting = view("etcd", Some(&pod(running(), false, 0)), Some(&refused));
        assert_eq!(
            (starting.phase, starting.detail.as_deref()),
            (Phase::Starting, Some("connection refused"))
        );
        assert_eq!(view("etcd", None, None).phase, Phase::Waiting);
    }

    #[test]
    fn repeated_restarts_in_backoff_are_a_crash_loop() {
        let waiting = || ContainerState::Waiting {
            reason: "CrashLoopBackOff".into(),
            message: None,
            backoff_remaining_ms: Some(9000),
        };
        assert_eq!(
            view("etcd", Some(&pod(waiting(), false, 1)), None).phase,
            Phase::Waiting
        );
        let looping = view("etcd", Some(&pod(waiting(), false, 2)), None);
        assert_eq!(looping.phase, Phase::CrashLooping);
        assert!(
            looping.line().contains("crash-looping") && looping.line().contains("back-off 20s"),
            "{}",
            looping.line()
        );
    }
}
