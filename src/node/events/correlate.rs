//! client-go's `EventCorrelator` as the kubelet's recorder uses it (`tools/record/events_cache.go`),
//! without the aggregation of similar messages: an event identical to one already posted (same
//! object, container, type, reason and message) updates that Event's `count` and
//! `lastTimestamp` instead of creating another, and each such key has a token bucket (burst 25,
//! one more every 5 minutes) beyond which events are dropped. Pure: time is passed in.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// client-go's `defaultSpamBurst`.
const BURST: f64 = 25.0;
/// client-go's `defaultSpamQPS`: one event per 300 s.
const REFILL: Duration = Duration::from_secs(300);
/// client-go's `maxLruCacheEntries`.
const MAX_KEYS: usize = 4096;

/// What makes two events the same one: the mirror pod (by UID), the container, type, reason and
/// message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub field_path: String,
    pub kind: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// An Event already in the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub name: String,
    pub count: i32,
    /// `firstTimestamp`, kept on every update.
    pub first: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// A new Event.
    Create,
    /// `count` and `lastTimestamp` of this existing Event, with the new count.
    Update { posted: Posted, count: i32 },
    /// Over the key's rate: dropped, as the kubelet's spam filter drops it.
    Limited,
}

#[derive(Debug)]
struct Entry {
    tokens: f64,
    refilled: Instant,
    posted: Option<Posted>,
}

#[derive(Debug, Default)]
pub struct Correlator {
    entries: BTreeMap<Key, Entry>,
}

impl Correlator {
    /// Whether and how to post `key` now; takes a token when it may.
    pub fn decide(&mut self, key: &Key, now: Instant) -> Decision {
        if !self.entries.contains_key(key) && self.entries.len() >= MAX_KEYS {
            self.evict_oldest();
        }
        let entry = self.entries.entry(key.clone()).or_insert(Entry {
            tokens: BURST,
            refilled: now,
            posted: None,
        });
        let earned =
            now.saturating_duration_since(entry.refilled).as_secs_f64() / REFILL.as_secs_f64();
        entry.tokens = (entry.tokens + earned).min(BURST);
        entry.refilled = now;
        if entry.tokens < 1.0 {
            return Decision::Limited;
        }
        entry.tokens -= 1.0;
        match &entry.posted {
            Some(posted) => Decision::Update {
                posted: posted.clone(),
                count: posted.count + 1,
            },
            None => Decision::Create,
        }
    }

    /// The Event the API server now holds for `key`.
    pub fn posted(&mut self, key: &Key, posted: Posted) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.posted = Some(posted);
        }
    }

    /// The Event for `key` is gone from the API (expired after the API server's event TTL).
    pub fn forget(&mut self, key: &Key) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.posted = None;
        }
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.refilled)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(message: &str) -> Key {
        Key {
            namespace: "kube-system".into(),
            pod: "etcd-n".into(),
            uid: "u1".into(),
            field_path: "spec.containers{etcd}".into(),
            kind: "Warning",
            reason: "Unhealthy",
            message: message.into(),
        }
    }

    #[test]
    fn an_identical_event_updates_the_posted_one() {
        let mut c = Correlator::default();
        let now = Instant::now();
        assert_eq!(c.decide(&key("a"), now), Decision::Create);
        let posted = Posted {
            name: "etcd-n.1".into(),
            count: 1,
            first: "t0".into(),
        };
        c.posted(&key("a"), posted.clone());
        assert_eq!(
            c.decide(&key("a"), now),
            Decision::Update {
                posted: posted.clone(),
                count: 2
            }
        );
        // Another message is another event.
        assert_eq!(c.decide(&key("b"), now), Decision::Create);
        c.forget(&key("a"));
        assert_eq!(c.decide(&key("a"), now), Decision::Create);
    }

    #[test]
    fn a_burst_of_25_then_one_per_five_minutes() {
        let mut c = Correlator::default();
        let start = Instant::now();
        let decisions: Vec<Decision> = (0..30).map(|_| c.decide(&key("a"), start)).collect();
        let allowed = decisions
            .iter()
            .filter(|d| **d != Decision::Limited)
            .count();
        assert_eq!(allowed, 25);
        assert_eq!(c.decide(&key("a"), start + REFILL / 2), Decision::Limited);
        assert_ne!(c.decide(&key("a"), start + REFILL), Decision::Limited);
        assert_eq!(c.decide(&key("a"), start + REFILL), Decision::Limited);
        // Other keys have buckets of their own.
        assert_eq!(c.decide(&key("b"), start), Decision::Create);
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut c = Correlator::default();
        let now = Instant::now();
        for i in 0..MAX_KEYS + 10 {
            c.decide(&key(&i.to_string()), now + Duration::from_millis(i as u64));
        }
        assert_eq!(c.entries.len(), MAX_KEYS);
        assert!(!c.entries.contains_key(&key("0")));
    }
}
