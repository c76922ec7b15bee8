//! CrashLoopBackOff, with the kubelet's semantics (reference §7, `flowcontrol.Backoff` as used by
//! `doBackOff`): the first restart after a crash is immediate and arms a 10 s back-off; each later
//! crash waits the current back-off from the moment the container finished, and the restart then
//! doubles it, up to 300 s. Once a container has run for more than 600 s since the last restart,
//! the next crash starts over. No jitter, as the kubelet. Pure: times are passed in.

use std::time::{Duration, Instant};

/// The kubelet's `backOffPeriod` (10 s), `MaxContainerBackOff` (300 s) and the 600 s after which an
/// entry expires (`kubelet.go`); configurable so that tests can use milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSettings {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for BackoffSettings {
    fn default() -> Self {
        BackoffSettings {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

/// One container's back-off entry (the kubelet keys it by pod, container, image and resources, so
/// a new manifest starts with a fresh one; the agent keeps one per container of a pod identity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CrashLoopBackoff {
    entry: Option<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    backoff: Duration,
    last_update: Instant,
}

impl CrashLoopBackoff {
    /// When a container that finished at `finished` may start again (`IsInBackOffSince`).
    pub fn restart_at(&self, finished: Instant, settings: &BackoffSettings) -> Instant {
        match self.entry {
            Some(entry) if !expired(finished, entry, settings) => finished + entry.backoff,
            _ => finished,
        }
    }

    /// Records a restart at `now` after a finish at `finished` (`Next`): a fresh or expired entry
    /// starts at the initial back-off, otherwise the back-off doubles up to the maximum.
    pub fn record_restart(&mut self, finished: Instant, now: Instant, settings: &BackoffSettings) {
        let backoff = match self.entry {
            Some(entry) if !expired(finished, entry, settings) => {
                (entry.backoff * 2).min(settings.max)
            }
            _ => settings.initial,
        };
        self.entry = Some(Entry {
            backoff,
            last_update: now,
        });
    }

    /// The back-off the next crash will wait, for status.
    pub fn current(&self) -> Option<Duration> {
        self.entry.map(|e| e.backoff)
    }
}

fn expired(finished: Instant, entry: Entry, settings: &BackoffSettings) -> bool {
    finished.saturating_duration_since(entry.last_update) > settings.reset_after
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container that crashes one second after each start: the waits follow 0, 10, 20, … 300.
    #[test]
    fn delays_double_from_ten_seconds_to_five_minutes() {
        let settings = BackoffSettings::default();
        let mut backoff = CrashLoopBackoff::default();
        let mut now = Instant::now();
        let mut waits = Vec::new();
        for _ in 0..9 {
            now += Duration::from_secs(1); // runs for a second, then crashes
            let restart = backoff.restart_at(now, &settings);
            waits.push((restart - now).as_secs());
            backoff.record_restart(now, restart, &settings);
            now = restart;
        }
        assert_eq!(waits, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
    }

    #[test]
    fn resets_after_ten_minutes_of_running() {
        let settings = BackoffSettings::default();
        let mut backoff = CrashLoopBackoff::default();
        let start = Instant::now();
        backoff.record_restart(start, start, &settings);
        backoff.record_restart(start, start, &settings);
        assert_eq!(backoff.current(), Some(Duration::from_secs(20)));
        // Ran 10 minutes and a second since the last restart: the crash restarts at once.
        let finished = start + Duration::from_secs(601);
        assert_eq!(backoff.restart_at(finished, &settings), finished);
        backoff.record_restart(finished, finished, &settings);
        assert_eq!(backoff.current(), Some(Duration::from_secs(10)));
        // Exactly 600 s is not yet expired (the kubelet compares with >).
        let finished = finished + Duration::from_secs(600);
        assert_eq!(
            backoff.restart_at(finished, &settings),
            finished + Duration::from_secs(10)
        );
    }

    #[test]
    fn zero_initial_never_waits() {
        let settings = BackoffSettings {
            initial: Duration::ZERO,
            ..BackoffSettings::default()
        };
        let mut backoff = CrashLoopBackoff::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(backoff.restart_at(now, &settings), now);
            backoff.record_restart(now, now, &settings);
        }
    }
}
