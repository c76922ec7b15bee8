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
        let success = result.passed();
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(success: u32, failure: u32) -> ProbeSettings {
        ProbeSettings {
            success_threshold: success,
            failure_threshold: failure,
            ..ProbeSettings::default()
        }
    }

    fn fail(m: &str) -> ProbeResult {
        ProbeResult::Failure(m.into())
    }

    #[test]
    fn initial_states_match_the_kubelet() {
        assert_eq!(
            ProbeTracker::new(ProbeKind::Readiness, settings(1, 3)).state(),
            ProbeState::Failure
        );
        assert_eq!(
            ProbeTracker::new(ProbeKind::Liveness, settings(1, 3)).state(),
            ProbeState::Success
        );
        assert_eq!(
            ProbeTracker::new(ProbeKind::Startup, settings(1, 3)).state(),
            ProbeState::Unknown
        );
    }

    #[test]
    fn liveness_flips_only_at_the_failure_threshold() {
        let mut t = ProbeTracker::new(ProbeKind::Liveness, settings(1, 3));
        assert_eq!(t.record(&fail("a")), None);
        assert_eq!(t.record(&fail("b")), None);
        assert_eq!(t.consecutive_failures(), 2);
        assert_eq!(t.state(), ProbeState::Success);
        let change = t.record(&fail("HTTP probe failed with statuscode: 500"));
        assert_eq!(
            change,
            Some(ProbeOutcomeChange {
                kind: ProbeKind::Liveness,
                from: ProbeState::Success,
                to: ProbeState::Failure,
                error: Some("HTTP probe failed with statuscode: 500".into()),
            })
        );
        // Further failures report no new change.
        assert_eq!(t.record(&fail("c")), None);
        assert_eq!(t.consecutive_failures(), 4);
    }

    #[test]
    fn a_success_resets_the_failure_run() {
        let mut t = ProbeTracker::new(ProbeKind::Liveness, settings(1, 3));
        t.record(&fail("a"));
        t.record(&fail("b"));
        assert_eq!(t.record(&ProbeResult::Success), None);
        assert_eq!(t.consecutive_failures(), 0);
        assert_eq!(
            t.last_error(),
            Some("b"),
            "the last error stays for diagnosis"
        );
        t.record(&fail("c"));
        t.record(&fail("d"));
        assert_eq!(t.state(), ProbeState::Success);
    }

    #[test]
    fn readiness_needs_success_threshold_successes() {
        let mut t = ProbeTracker::new(ProbeKind::Readiness, settings(2, 1));
        assert_eq!(t.record(&ProbeResult::Success), None);
        let change = t.record(&ProbeResult::Success).unwrap();
        assert_eq!(
            (change.from, change.to, change.error),
            (ProbeState::Failure, ProbeState::Success, None)
        );
        assert_eq!(
            t.record(&fail("down")).map(|c| c.to),
            Some(ProbeState::Failure)
        );
    }

    #[test]
    fn liveness_and_startup_succeed_after_one_success() {
        // The API validation forces successThreshold 1 on these kinds.
        let mut t = ProbeTracker::new(ProbeKind::Startup, settings(5, 3));
        assert_eq!(
            t.record(&ProbeResult::Success).map(|c| c.to),
            Some(ProbeState::Success)
        );
    }

    /// Every sequence of up to 8 results against a reference that recomputes the state from the
    /// whole history: the state is the kind of the latest run that reached its threshold.
    #[test]
    fn matches_the_reference_on_every_short_sequence() {
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ] {
            for success in 1..=3 {
                for failure in 1..=4 {
                    for len in 0..=8u32 {
                        for bits in 0..(1u32 << len) {
                            check_sequence(kind, success, failure, len, bits);
                        }
                    }
                }
            }
        }
    }

    fn check_sequence(kind: ProbeKind, success: u32, failure: u32, len: u32, bits: u32) {
        let initial = ProbeTracker::new(kind, settings(success, failure)).state();
        let success_needed = if kind == ProbeKind::Readiness {
            success
        } else {
            1
        };
        let mut t = ProbeTracker::new(kind, settings(success, failure));
        let history: Vec<bool> = (0..len).map(|i| bits & (1 << i) != 0).collect();
        for i in 0..history.len() {
            let before = t.state();
            let change = t.record(&if history[i] {
                ProbeResult::Success
            } else {
                fail("x")
            });
            let mut expected = initial;
            for end in 0..=i {
                let run = history[..=end]
                    .iter()
                    .rev()
                    .take_while(|r| **r == history[end])
                    .count() as u32;
                let needed = if history[end] {
                    success_needed
                } else {
                    failure
                };
                if run >= needed {
                    expected = if history[end] {
                        ProbeState::Success
                    } else {
                        ProbeState::Failure
                    };
                }
            }
            assert_eq!(
                t.state(),
                expected,
                "{kind:?} s={success} f={failure} history={:?}",
                &history[..=i]
            );
            assert_eq!(
                change.is_some(),
                before != expected,
                "change reported iff the state moved"
            );
            let trailing_failures = history[..=i].iter().rev().take_while(|r| !**r).count() as u32;
            assert_eq!(t.consecutive_failures(), trailing_failures);
        }
    }

    #[test]
    fn next_due_waits_the_initial_delay_then_each_period() {
        let s = ProbeSettings {
            initial_delay: Duration::from_secs(10),
            period: Duration::from_secs(3),
            ..settings(1, 3)
        };
        let t = ProbeTracker::new(ProbeKind::Liveness, s);
        let start = Instant::now();
        assert_eq!(t.next_due(start, None), start + Duration::from_secs(10));
        let ran = start + Duration::from_secs(11);
        assert_eq!(t.next_due(start, Some(ran)), ran + Duration::from_secs(3));
        // A run recorded before the initial delay (e.g. carried over) never brings it forward.
        assert_eq!(
            t.next_due(start, Some(start)),
            start + Duration::from_secs(10)
        );
    }
}
