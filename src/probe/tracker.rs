//! The threshold state machine of one probe of one container, as the kubelet's probe worker
//! keeps it (`prober/worker.go` `doProbe`): a result only changes the probe's state after
//! `failureThreshold` consecutive failures or `successThreshold` consecutive successes. Pure: the
//! caller passes results and instants; nothing here reads a clock.

use std::time::Instant;

use super::run::ProbeResult;
use super::spec::ProbeSettings;

/// Which of a container's three probes this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    /// The kubelet's capitalised name, as in "Liveness probe failed: ...".
    pub fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }

    /// The lower-case name, as in "failed liveness probe".
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        }
    }
}

/// The probe's reported state (`results.Result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeState {
    Unknown,
    Success,
    Failure,
}

/// A change of a probe's reported state, returned by [`ProbeTracker::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcomeChange {
    pub kind: ProbeKind,
    pub from: ProbeState,
    pub to: ProbeState,
    /// The last failure's message when `to` is `Failure`.
    pub error: Option<String>,
}

/// One probe's counters and reported state.
#[derive(Debug, Clone)]
pub struct ProbeTracker {
    kind: ProbeKind,
    settings: ProbeSettings,
    state: ProbeState,
    /// The kind of the current run of identical results (`lastResult`) and its length
    /// (`resultRun`); `None` before the first result.
    run_of: Option<bool>,
    run_length: u32,
    last_error: Option<String>,
}

impl ProbeTracker {
    /// A tracker in the kubelet's initial state: readiness Failure (not ready until a probe
    /// passes), liveness Success (alive until proven dead), startup Unknown.
    pub fn new(kind: ProbeKind, settings: ProbeSettings) -> Self {
        let state = match kind {
            ProbeKind::Readiness => ProbeState::Failure,
            ProbeKind::Liveness => ProbeState::Success,
            ProbeKind::Startup => ProbeState::Unknown,
        };
        ProbeTracker {
            kind,
            settings,
            state,
            run_of: None,
            run_length: 0,
            last_error: None,
        }
    }

    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    pub fn settings(&self) -> &ProbeSettings {
        &self.settings
    }

    /// Counts `result` into the current run of consecutive results and returns the change of
    /// state, if the run just reached its threshold and the state differs.
    pub fn record(&mut self, result: &ProbeResult) -> Option<ProbeOutcomeChange> {
        let success = matches!(result, ProbeResult::Success);
        if self.run_of == Some(success) {
            self.run_length = self.run_length.saturating_add(1);
        } else {
            self.run_of = Some(success);
            self.run_length = 1;
        }
        if let ProbeResult::Failure(message) = result {
            self.last_error = Some(message.clone());
        }
        let threshold = if success {
            self.success_threshold()
        } else {
            self.settings.failure_threshold.max(1)
        };
        if self.run_length < threshold {
            return None;
        }
        let to = if success {
            ProbeState::Success
        } else {
            ProbeState::Failure
        };
        if to == self.state {
            return None;
        }
        let from = std::mem::replace(&mut self.state, to);
        Some(ProbeOutcomeChange {
            kind: self.kind,
            from,
            to,
            error: if success {
                None
            } else {
                self.last_error.clone()
            },
        })
    }

    /// The API validation requires `successThreshold` 1 for liveness and startup probes.
    fn success_threshold(&self) -> u32 {
        match self.kind {
            ProbeKind::Readiness => self.settings.success_threshold.max(1),
            ProbeKind::Liveness | ProbeKind::Startup => 1,
        }
    }

    pub fn state(&self) -> ProbeState {
        self.state
    }

    /// The most recent failure's message, kept after later successes for diagnosis.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// How many failures in a row the latest results are (0 after a success).
    pub fn consecutive_failures(&self) -> u32 {
        if self.run_of == Some(false) {
            self.run_length
        } else {
            0
        }
    }

    /// When this probe should next run: not before `initialDelaySeconds` after the container
    /// started, then one period after the previous run.
    pub fn next_due(&self, container_started: Instant, last_run: Option<Instant>) -> Instant {
        let first = container_started + self.settings.initial_delay;
        match last_run {
            None => first,
            Some(last) => (last + self.settings.period).max(first),
        }
    }
}
