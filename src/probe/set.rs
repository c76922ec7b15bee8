//! A container's startup, liveness and readiness probes with the kubelet's gating
//! (`prober/worker.go`, `prober_manager.go` `UpdatePodStatus`). Pure: the agent asks which probes
//! are due at an instant, runs them with [`super::run`], and feeds the results back; the set
//! answers with [`Verdict`]s.
//!
//! * Until the startup probe succeeds only it runs; then it stops for good and liveness and
//!   readiness begin. A container without a startup probe is started at once.
//! * Liveness failing, or startup failing `failureThreshold` times, means restart; after that
//!   the set is on hold (the kubelet waits for a new container ID): nothing runs, results are
//!   ignored. The agent builds a new set for the new container.
//! * Readiness only flips Ready. Ready needs started, and no readiness probe means ready.
//! * While the pod terminates, liveness and startup count as Success and stop running.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Probe};

use super::run::ProbeResult;
use super::spec::{ProbeAction, ProbeSettings, ProbeSpecError};
use super::tracker::{ProbeKind, ProbeState, ProbeTracker};

/// What a recorded result changed for the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The startup probe passed: `status.started` is now true.
    Started,
    /// The container became Ready.
    Ready,
    /// The container is no longer Ready; `reason` is the readiness failure.
    NotReady { reason: String },
    /// Kill and restart the container. `reason` reads like the kubelet's event, e.g.
    /// `Liveness probe failed: HTTP probe failed with statuscode: 500`; `grace_period` is the
    /// probe-level `terminationGracePeriodSeconds` when set (else the pod's applies).
    Restart {
        reason: String,
        grace_period: Option<Duration>,
    },
}

/// A probe the agent should run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueProbe {
    pub kind: ProbeKind,
    pub action: ProbeAction,
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
struct Slot {
    action: ProbeAction,
    tracker: ProbeTracker,
    last_run: Option<Instant>,
    /// Handed out by `take_due` and not yet answered by `record`: like the kubelet's worker,
    /// which probes sequentially, a probe never runs twice at once, however short its period.
    in_flight: bool,
}

/// The three probes of one container instance.
#[derive(Debug, Clone)]
pub struct ProbeSet {
    container_started: Instant,
    startup: Option<Slot>,
    liveness: Option<Slot>,
    readiness: Option<Slot>,
    started: bool,
    terminating: bool,
    on_hold: bool,
}

impl ProbeSet {
    /// A set for a container instance that started at `container_started`; each probe's
    /// `(action, settings)` is optional.
    pub fn new(
        container_started: Instant,
        startup: Option<(ProbeAction, ProbeSettings)>,
        liveness: Option<(ProbeAction, ProbeSettings)>,
        readiness: Option<(ProbeAction, ProbeSettings)>,
    ) -> Self {
        let slot = |kind, p: Option<(ProbeAction, ProbeSettings)>| {
            p.map(|(action, settings)| Slot {
                action,
                tracker: ProbeTracker::new(kind, settings),
                last_run: None,
                in_flight: false,
            })
        };
        let startup = slot(ProbeKind::Startup, startup);
        ProbeSet {
            container_started,
            started: startup.is_none(),
            startup,
            liveness: slot(ProbeKind::Liveness, liveness),
            readiness: slot(ProbeKind::Readiness, readiness),
            terminating: false,
            on_hold: false,
        }
    }

    /// Reads the container's `startupProbe`, `livenessProbe` and `readinessProbe`.
    pub fn for_container(
        container: &Container,
        default_host: &str,
        container_started: Instant,
    ) -> Result<Self, ProbeSpecError> {
        let read = |probe: &Option<Probe>| -> Result<_, ProbeSpecError> {
            probe
                .as_ref()
                .map(|p| {
                    Ok((
                        ProbeAction::from_probe(p, container, default_host)?,
                        ProbeSettings::from_probe(p),
                    ))
                })
                .transpose()
        };
        Ok(ProbeSet::new(
            container_started,
            read(&container.startup_probe)?,
            read(&container.liveness_probe)?,
            read(&container.readiness_probe)?,
        ))
    }

    fn slot(&self, kind: ProbeKind) -> Option<&Slot> {
        match kind {
            ProbeKind::Startup => self.startup.as_ref(),
            ProbeKind::Liveness => self.liveness.as_ref(),
            ProbeKind::Readiness => self.readiness.as_ref(),
        }
    }

    fn slot_mut(&mut self, kind: ProbeKind) -> Option<&mut Slot> {
        match kind {
            ProbeKind::Startup => self.startup.as_mut(),
            ProbeKind::Liveness => self.liveness.as_mut(),
            ProbeKind::Readiness => self.readiness.as_mut(),
        }
    }

    /// Whether `kind` runs at all in the current phase (gating, termination, hold).
    fn active(&self, kind: ProbeKind) -> bool {
        if self.on_hold || self.slot(kind).is_none() {
            return false;
        }
        match kind {
            ProbeKind::Startup => !self.started && !self.terminating,
            ProbeKind::Liveness => self.started && !self.terminating,
            ProbeKind::Readiness => self.started,
        }
    }

    const KINDS: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    /// The earliest instant any active probe is due; `None` when none will run.
    pub fn next_due(&self) -> Option<Instant> {
        Self::KINDS
            .iter()
            .filter(|k| self.active(**k))
            .filter_map(|k| self.slot(*k))
            .filter(|s| !s.in_flight)
            .map(|s| s.tracker.next_due(self.container_started, s.last_run))
            .min()
    }

    /// The probes due at `now`, each marked as run at `now` so it is due again one period later,
    /// and in flight until its result is [`record`](Self::record)ed: every probe handed out here
    /// must be answered, or it never runs again.
    pub fn take_due(&mut self, now: Instant) -> Vec<DueProbe> {
        let mut due = Vec::new();
        for kind in Self::KINDS {
            if !self.active(kind) {
                continue;
            }
            let started = self.container_started;
            if let Some(slot) = self.slot_mut(kind) {
                if !slot.in_flight && slot.tracker.next_due(started, slot.last_run) <= now {
                    slot.last_run = Some(now);
                    slot.in_flight = true;
                    due.push(DueProbe {
                        kind,
                        action: slot.action.clone(),
                        timeout: slot.tracker.settings().timeout,
                    });
                }
            }
        }
        due
    }

    /// Feeds one result of the `kind` probe; results of probes not active now (a startup probe
    /// after start, anything on hold, liveness while terminating) are ignored, as the kubelet's
    /// worker would not have run them.
    pub fn record(&mut self, kind: ProbeKind, result: &ProbeResult) -> Vec<Verdict> {
        if let Some(slot) = self.slot_mut(kind) {
            slot.in_flight = false;
        }
        if !self.active(kind) {
            return Vec::new();
        }
        let was_ready = self.ready();
        let Some(slot) = self.slot_mut(kind) else {
            return Vec::new();
        };
        let change = slot.tracker.record(result);
        let grace_period = slot.tracker.settings().termination_grace_period;
        let mut verdicts = Vec::new();
        match (kind, change.map(|c| c.to)) {
            (ProbeKind::Startup, Some(ProbeState::Success)) => {
                self.started = true;
                verdicts.push(Verdict::Started);
            }
            (ProbeKind::Startup | ProbeKind::Liveness, Some(ProbeState::Failure)) => {
                self.on_hold = true;
                let error = self
                    .slot(kind)
                    .and_then(|s| s.tracker.last_error())
                    .unwrap_or_default();
                verdicts.push(Verdict::Restart {
                    reason: format!("{} probe failed: {error}", kind.title()),
                    grace_period,
                });
            }
            _ => {}
        }
        // A restart implies not ready; the agent needs no second verdict for it.
        match (was_ready, self.ready(), self.on_hold) {
            (false, true, _) => verdicts.push(Verdict::Ready),
            (true, false, false) => verdicts.push(Verdict::NotReady {
                reason: self.readiness_reason(),
            }),
            _ => {}
        }
        verdicts
    }

    fn readiness_reason(&self) -> String {
        let error = self
            .readiness
            .as_ref()
            .and_then(|s| s.tracker.last_error())
            .unwrap_or_default();
        format!("Readiness probe failed: {error}")
    }

    /// The pod is being deleted: liveness and startup stop (they count as Success); readiness
    /// keeps running so the container can be seen to go NotReady.
    pub fn set_terminating(&mut self) {
        self.terminating = true;
    }

    /// `status.started`: the startup probe passed, or there is none.
    pub fn started(&self) -> bool {
        self.started
    }

    /// `status.ready`: started, and the readiness probe passed or there is none. False once a
    /// restart was decided.
    pub fn ready(&self) -> bool {
        if !self.started || self.on_hold {
            return false;
        }
        match &self.readiness {
            None => true,
            Some(slot) => slot.tracker.state() == ProbeState::Success,
        }
    }

    /// A restart was decided; nothing runs until the agent replaces this set.
    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    pub fn tracker(&self, kind: ProbeKind) -> Option<&ProbeTracker> {
        self.slot(kind).map(|s| &s.tracker)
    }

    /// For one-line diagnosis: the first probe (startup, liveness, readiness) whose latest result
    /// was a failure, with its message and how many failures in a row.
    pub fn failing(&self) -> Option<(ProbeKind, &str, u32)> {
        Self::KINDS.iter().find_map(|k| {
            let t = &self.slot(*k)?.tracker;
            let n = t.consecutive_failures();
            (n > 0).then(|| (*k, t.last_error().unwrap_or_default(), n))
        })
    }
}

#[cfg(test)]
#[path = "set_tests.rs"]
mod tests;
