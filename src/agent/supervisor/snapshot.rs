//! The supervisor's state as [`AgentStatus`], with the one-line diagnosis of design §5 ★ for
//! every pod that is not running and ready.

use std::time::{Instant, SystemTime};

use super::super::pod::{ContainerState, ContainerWorker, PodWorker, Termination};
use super::super::status::{
    self, AgentStatus, ContainerStatus, ManifestProblem, PodPhase, PodStatus, ProbeStatus,
};
use super::lifecycle::describe_exit;
use super::Supervisor;
use crate::probe::{ProbeKind, ProbeState};
use crate::runtime::logs::cri::rfc3339_nano;
use crate::runtime::logs::files::container_log_path;
use crate::runtime::ContainerExit;

impl Supervisor {
    pub(super) fn snapshot(&self) -> AgentStatus {
        let now = Instant::now();
        let options = &self.ctx.options;
        let mut warnings = self.ctx.runtime.warnings();
        warnings.extend(self.directory_warning.iter().cloned());
        warnings.extend(self.warnings.iter().cloned());
        let manifest_problems = self
            .desired
            .problems
            .iter()
            .map(|p| ManifestProblem {
                path: p.path.clone(),
                error: p.error.clone(),
                kept_running: p.kept_running.clone(),
            })
            .collect();
        let pods = self
            .pods
            .values()
            .map(|worker| {
                let manifest_error = self
                    .desired
                    .problems
                    .iter()
                    .find(|p| p.path == worker.pod.path && p.kept_running.is_some());
                let mut status = pod_status(worker, manifest_error.map(|p| p.error.clone()), now);
                status.ignored_fields = self
                    .ctx
                    .runtime
                    .ignored_fields(super::lifecycle::pod_ref(&worker.pod));
                status
            })
            .collect();
        AgentStatus {
            node_name: options.node_name.clone(),
            manifest_dir: options.manifest_dir.clone(),
            agent_pid: std::process::id(),
            runtime: options.runtime.name().into(),
            started_at: rfc3339_nano(self.ctx.started_at),
            warnings,
            manifest_problems,
            pods,
            api: None,
        }
    }
}

fn pod_status(worker: &PodWorker, manifest_error: Option<String>, now: Instant) -> PodStatus {
    let containers = |list: &[ContainerWorker]| {
        list.iter()
            .map(|c| container_status(worker, c, now))
            .collect::<Vec<_>>()
    };
    let network = match &worker.sandbox {
        Some(s) if s.netns.is_some() => s.notes.join("; "),
        Some(s) if !s.notes.is_empty() => s.notes.join("; "),
        _ => "host".to_string(),
    };
    let mut status = PodStatus {
        name: worker.pod.full_name.to_string(),
        namespace: worker.pod.namespace.to_string(),
        uid: worker.pod.uid.to_string(),
        manifest: worker.pod.path.clone(),
        phase: worker.phase(),
        terminating: worker.terminating.is_some(),
        ready: worker.ready(),
        network,
        pod_ip: worker
            .sandbox
            .as_ref()
            .and_then(|s| s.pod_ip)
            .map(|ip| ip.to_string()),
        restarts: worker.containers().map(|c| c.restart_count).sum(),
        manifest_error,
        ignored_fields: Vec::new(),
        reason: None,
        init_containers: containers(&worker.init),
        containers: containers(&worker.app),
    };
    status.reason = diagnose(worker, &status);
    status
}

fn container_status(worker: &PodWorker, c: &ContainerWorker, now: Instant) -> ContainerStatus {
    let state = match &c.state {
        ContainerState::Waiting { reason } => status::ContainerState::Waiting {
            reason: reason.clone(),
            message: None,
            backoff_remaining_ms: None,
        },
        ContainerState::BackOff {
            until,
            reason,
            message,
        } => status::ContainerState::Waiting {
            reason: reason.clone(),
            message: Some(message.clone()),
            backoff_remaining_ms: Some(until.saturating_duration_since(now).as_millis() as u64),
        },
        ContainerState::Starting { .. } => status::ContainerState::Waiting {
            reason: "ContainerCreating".into(),
            message: None,
            backoff_remaining_ms: None,
        },
        ContainerState::Running(r) => status::ContainerState::Running {
            pid: r.handle.pid,
            started_at: rfc3339_nano(r.handle.started_at),
            adopted: r.adopted,
            stopping: r.stopping.clone(),
        },
        ContainerState::Done(t) => status::ContainerState::Terminated(terminated(t)),
    };
    let probes = c
        .running()
        .map(|r| {
            [
                ProbeKind::Startup,
                ProbeKind::Liveness,
                ProbeKind::Readiness,
            ]
            .into_iter()
            .filter_map(|kind| r.probes.tracker(kind))
            .map(|t| ProbeStatus {
                kind: t.kind().name().to_string(),
                result: match t.state() {
                    ProbeState::Success => "success",
                    ProbeState::Failure => "failure",
                    ProbeState::Unknown => "unknown",
                }
                .to_string(),
                last_error: t.last_error().map(str::to_string),
                consecutive_failures: t.consecutive_failures(),
            })
            .collect()
        })
        .unwrap_or_default();
    ContainerStatus {
        name: c.name.clone(),
        state,
        ready: c.ready(),
        started: c.running().is_some_and(|r| r.probes.started()),
        restart_count: c.restart_count,
        last_state: c.last_termination.as_ref().map(terminated),
        probes,
        log_path: container_log_path(&worker.log_dir, &c.name, c.restart_count),
        image: container_image(worker, c),
        image_id: c.running().and_then(|r| r.handle.image_id.clone()),
    }
}

/// The image the manifest names for `c`.
fn container_image(worker: &PodWorker, c: &ContainerWorker) -> Option<String> {
    let spec = worker.pod.pod.spec.as_ref()?;
    let list = if c.init {
        spec.init_containers.as_ref()?
    } else {
        &spec.containers
    };
    list.get(c.index)?.image.clone()
}

fn terminated(t: &Termination) -> status::Terminated {
    status::Terminated {
        exit_code: t.exit.exit_code(),
        signal: match t.exit {
            ContainerExit::Signal(s) => Some(s),
            _ => None,
        },
        reason: t.reason.clone(),
        message: Some(describe_exit(t.exit)),
        started_at: rfc3339_nano(t.started_at),
        finished_at: rfc3339_nano(t.finished_at.min(SystemTime::now())),
    }
}

/// One line saying why a pod is not healthy: it is stopping, its sandbox failed, or the first of
/// its containers' causes ([`PodStatus::container_causes`], the one diagnosis builder that
/// `boot init` uses too).
fn diagnose(worker: &PodWorker, status: &PodStatus) -> Option<String> {
    if status.healthy() && status.manifest_error.is_none() {
        return None;
    }
    if let Some(terminating) = &worker.terminating {
        return Some(format!("terminating: {}", terminating.reason));
    }
    if let Some((error, _)) = &worker.sandbox_error {
        return Some(error.clone());
    }
    if let Some(cause) = status.container_causes().into_iter().next() {
        return Some(cause);
    }
    if let Some(error) = &status.manifest_error {
        return Some(format!(
            "manifest error, the last good version keeps running: {error}"
        ));
    }
    match status.phase {
        PodPhase::Succeeded => Some("all containers completed".into()),
        PodPhase::Pending => Some("starting".into()),
        _ => None,
    }
}
