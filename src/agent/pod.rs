//! The state of one pod and its containers in the agent. Container states are an enum carrying
//! only what is valid in each state; the decisions on them (restart or not, the pod's phase and
//! readiness) are pure functions here, the side effects are in [`super::supervisor`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::backoff::CrashLoopBackoff;
use super::source::StaticPod;
use super::status::PodPhase;
use crate::probe::ProbeSet;
use crate::runtime::{ContainerExit, ContainerHandle, Sandbox};

/// The kubelet's default `terminationGracePeriodSeconds` (30).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// The kubelet's `minimumGracePeriodInSeconds` (2): even a grace period of 0 gets this long.
const MIN_GRACE: Duration = Duration::from_secs(2);

/// How long a pod's containers get between SIGTERM and SIGKILL: its
/// `terminationGracePeriodSeconds`, default 30 s, at least 2 s (the kubelet's `killPod`). The one
/// rule for the agent, adoption's leftovers and `boot reset`.
pub fn termination_grace_period(spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> Duration {
    spec.and_then(|s| s.termination_grace_period_seconds)
        .map_or(DEFAULT_GRACE, |s| {
            Duration::from_secs(u64::try_from(s).unwrap_or(0))
        })
        .max(MIN_GRACE)
}

/// `spec.restartPolicy`, default `Always`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    pub fn of(pod: &StaticPod) -> RestartPolicy {
        match pod.spec().restart_policy.as_deref() {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }

    /// Whether a container that ended with `exit` starts again. An unknown exit (an adopted
    /// process) counts as a failure.
    pub fn restarts(self, exit: ContainerExit) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !exit.succeeded(),
            RestartPolicy::Never => false,
        }
    }
}

/// How a container ended.
#[derive(Debug, Clone)]
pub struct Termination {
    pub exit: ContainerExit,
    /// `Completed`, `Error`, `Unknown`, or why the agent stopped it (`Liveness probe failed: …`).
    pub reason: String,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
    pub finished: Instant,
}

/// A container process the agent watches.
#[derive(Debug)]
pub struct Running {
    pub handle: ContainerHandle,
    pub since: Instant,
    pub probes: ProbeSet,
    /// Started by an earlier agent and adopted.
    pub adopted: bool,
    /// The agent asked it to stop, and why.
    pub stopping: Option<String>,
    /// Probe kinds with a run in flight (a slow probe is not started twice).
    pub probes_in_flight: Vec<crate::probe::ProbeKind>,
}

#[derive(Debug)]
pub enum ContainerState {
    /// Not started yet: `reason` is what it waits for (`PodInitializing`, `ContainerCreating`).
    Waiting {
        reason: String,
    },
    /// Will start at `until`: after a crash (CrashLoopBackOff) or a failed start (`message`).
    BackOff {
        until: Instant,
        reason: String,
        message: String,
    },
    /// The runtime is starting it (on a blocking thread); its probes wait in here.
    Starting {
        probes: Box<ProbeSet>,
        since: Instant,
    },
    Running(Box<Running>),
    /// Ended and will not start again.
    Done(Termination),
}

#[derive(Debug)]
pub struct ContainerWorker {
    pub name: String,
    pub init: bool,
    /// Index into the pod's `initContainers` or `containers`.
    pub index: usize,
    pub restart_count: u32,
    pub backoff: CrashLoopBackoff,
    pub state: ContainerState,
    pub last_termination: Option<Termination>,
    /// Bumped on every start, so that a late exit or probe result of an earlier instance is ignored.
    pub instance: u64,
    /// Whether the container has been started at least once (by this or an earlier agent).
    pub ever_started: bool,
}

impl ContainerWorker {
    pub fn new(name: &str, init: bool, index: usize) -> ContainerWorker {
        ContainerWorker {
            name: name.to_string(),
            init,
            index,
            restart_count: 0,
            backoff: CrashLoopBackoff::default(),
            state: ContainerState::Waiting {
                reason: if init {
                    "PodInitializing"
                } else {
                    "ContainerCreating"
                }
                .into(),
            },
            last_termination: None,
            instance: 0,
            ever_started: false,
        }
    }

    pub fn running(&self) -> Option<&Running> {
        match &self.state {
            ContainerState::Running(running) => Some(running),
            _ => None,
        }
    }

    pub fn running_mut(&mut self) -> Option<&mut Running> {
        match &mut self.state {
            ContainerState::Running(running) => Some(running),
            _ => None,
        }
    }

    pub fn ready(&self) -> bool {
        self.running()
            .is_some_and(|r| r.stopping.is_none() && r.probes.ready())
    }

    /// An init container that ran to completion.
    pub fn completed(&self) -> bool {
        matches!(&self.state, ContainerState::Done(t) if t.exit.succeeded())
    }
}

/// Why a pod is being stopped.
#[derive(Debug, Clone)]
pub struct Terminating {
    pub reason: String,
}

#[derive(Debug)]
pub struct PodWorker {
    pub pod: Arc<StaticPod>,
    pub policy: RestartPolicy,
    pub sandbox: Option<Sandbox>,
    /// The runtime is creating the sandbox.
    pub sandbox_pending: bool,
    /// Creating the sandbox failed; retried at the instant.
    pub sandbox_error: Option<(String, Instant)>,
    pub init: Vec<ContainerWorker>,
    pub app: Vec<ContainerWorker>,
    pub terminating: Option<Terminating>,
    pub log_dir: PathBuf,
}

impl PodWorker {
    pub fn new(pod: Arc<StaticPod>, log_dir: PathBuf) -> PodWorker {
        let init = pod
            .init_containers()
            .iter()
            .enumerate()
            .map(|(i, c)| ContainerWorker::new(&c.name, true, i))
            .collect();
        let app = pod
            .containers()
            .iter()
            .enumerate()
            .map(|(i, c)| ContainerWorker::new(&c.name, false, i))
            .collect();
        PodWorker {
            policy: RestartPolicy::of(&pod),
            pod,
            sandbox: None,
            sandbox_pending: false,
            sandbox_error: None,
            init,
            app,
            terminating: None,
            log_dir,
        }
    }

    pub fn containers(&self) -> impl Iterator<Item = &ContainerWorker> {
        self.init.iter().chain(self.app.iter())
    }

    pub fn containers_mut(&mut self) -> impl Iterator<Item = &mut ContainerWorker> {
        self.init.iter_mut().chain(self.app.iter_mut())
    }

    pub fn container_mut(&mut self, init: bool, index: usize) -> Option<&mut ContainerWorker> {
        if init {
            self.init.get_mut(index)
        } else {
            self.app.get_mut(index)
        }
    }

    /// Every init container completed (or there are none).
    pub fn initialized(&self) -> bool {
        self.init.iter().all(ContainerWorker::completed)
    }

    /// The next init container to run, if initialization is not done.
    pub fn next_init(&self) -> Option<usize> {
        self.init.iter().position(|c| !c.completed())
    }

    /// No process left and no runtime call in flight: a terminating pod can be finished.
    pub fn all_stopped(&self) -> bool {
        !self.sandbox_pending
            && self.containers().all(|c| {
                c.running().is_none() && !matches!(c.state, ContainerState::Starting { .. })
            })
    }

    pub fn ready(&self) -> bool {
        self.terminating.is_none()
            && self.initialized()
            && self.app.iter().all(ContainerWorker::ready)
    }

    /// The pod phase, as the kubelet's `getPhase`.
    pub fn phase(&self) -> PodPhase {
        let init_failed = self
            .init
            .iter()
            .any(|c| matches!(&c.state, ContainerState::Done(t) if !t.exit.succeeded()));
        if init_failed {
            return PodPhase::Failed;
        }
        if !self.initialized() || self.app.iter().any(|c| !c.ever_started) {
            return PodPhase::Pending;
        }
        let done: Vec<&Termination> = self
            .app
            .iter()
            .filter_map(|c| match &c.state {
                ContainerState::Done(t) => Some(t),
                _ => None,
            })
            .collect();
        if done.len() < self.app.len() {
            return PodPhase::Running;
        }
        if done.iter().all(|t| t.exit.succeeded()) {
            PodPhase::Succeeded
        } else {
            PodPhase::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_periods_follow_the_kubelet() {
        let spec = |yaml: &str| -> k8s_openapi::api::core::v1::PodSpec {
            serde_yaml::from_str(yaml).unwrap()
        };
        assert_eq!(termination_grace_period(None), Duration::from_secs(30));
        let five = spec("{containers: [], terminationGracePeriodSeconds: 5}");
        assert_eq!(
            termination_grace_period(Some(&five)),
            Duration::from_secs(5)
        );
        let zero = spec("{containers: [], terminationGracePeriodSeconds: 0}");
        assert_eq!(
            termination_grace_period(Some(&zero)),
            Duration::from_secs(2)
        );
        let negative = spec("{containers: [], terminationGracePeriodSeconds: -3}");
        assert_eq!(
            termination_grace_period(Some(&negative)),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn restart_policy_decisions() {
        assert!(RestartPolicy::Always.restarts(ContainerExit::Code(0)));
        assert!(!RestartPolicy::OnFailure.restarts(ContainerExit::Code(0)));
        assert!(RestartPolicy::OnFailure.restarts(ContainerExit::Signal(9)));
        assert!(RestartPolicy::OnFailure.restarts(ContainerExit::Unknown));
        assert!(!RestartPolicy::Never.restarts(ContainerExit::Code(1)));
    }

    fn worker(yaml: &str) -> PodWorker {
        let pod = StaticPod::parse(std::path::Path::new("/m/p"), yaml.as_bytes(), "n").unwrap();
        PodWorker::new(Arc::new(pod), "/l".into())
    }

    fn done(code: i32) -> ContainerState {
        let now = SystemTime::now();
        ContainerState::Done(Termination {
            exit: ContainerExit::Code(code),
            reason: String::new(),
            started_at: now,
            finished_at: now,
            finished: Instant::now(),
        })
    }

    #[test]
    fn phases_follow_init_and_app_containers() {
        let mut w = worker(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {restartPolicy: Never, initContainers: [{name: i}], containers: [{name: a}, {name: b}]}\n",
        );
        assert_eq!(w.phase(), PodPhase::Pending);
        assert_eq!(w.next_init(), Some(0));
        w.init[0].state = done(0);
        assert!(w.initialized());
        assert_eq!(w.phase(), PodPhase::Pending);
        for c in &mut w.app {
            c.ever_started = true;
        }
        assert_eq!(w.phase(), PodPhase::Running);
        w.app[0].state = done(0);
        w.app[1].state = done(0);
        assert_eq!(w.phase(), PodPhase::Succeeded);
        w.app[1].state = done(2);
        assert_eq!(w.phase(), PodPhase::Failed);
        w.init[0].state = done(1);
        assert_eq!(w.phase(), PodPhase::Failed);
    }
}
