//! Events about the static pods, as the kubelet posts them (`Pulled`, `Created`, `Started`,
//! `Killing`, `Unhealthy`, `BackOff`, `Failed`). Like the kubelet's, they name the static pod:
//! `involvedObject.uid` is its UID, the mirror pod's `kubernetes.io/config.mirror`, not the mirror
//! pod's own UID. `kubectl describe pod` looks them up by that annotation; they outlive a deleted
//! and recreated mirror pod.
//!
//! Two tasks beside the node sync: [`watch_states`] turns each state the supervisor publishes
//! into drafts ([`derive`]) and queues them; [`post`] posts them once the sync reaches the API
//! server, deduplicated and rate-limited ([`correlate`]). The queue is bounded: when the API
//! server stays away, what does not fit is dropped and counted; nothing here ever waits on
//! supervision or the reverse.

pub mod correlate;
pub mod derive;
mod post;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use tokio::sync::{watch, Notify};

pub use post::post;

use crate::agent::published::Published;
use crate::agent::status::PodStatus;

/// Drafts waiting for the API server (the kubelet's broadcaster buffers 1000 events per sink;
/// a control-plane node has four pods).
pub const QUEUE_CAPACITY: usize = 256;

/// A draft with the moment it happened.
#[derive(Debug, Clone)]
pub struct Queued {
    pub draft: derive::Draft,
    pub at: SystemTime,
    pub queued: Instant,
}

/// The bounded queue between the two tasks.
#[derive(Debug, Default)]
pub struct Queue {
    items: Mutex<VecDeque<Queued>>,
    wake: Notify,
    dropped: AtomicU64,
    posted: AtomicU64,
}

impl Queue {
    /// Queues `draft`, or counts it dropped when the queue is full; never waits.
    pub fn push(&self, draft: derive::Draft) {
        let item = Queued {
            draft,
            at: SystemTime::now(),
            queued: Instant::now(),
        };
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        if items.len() >= QUEUE_CAPACITY {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        items.push_back(item);
        drop(items);
        self.wake.notify_one();
    }

    fn take(&self) -> VecDeque<Queued> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Puts back what could not be posted yet, ahead of anything queued meanwhile.
    fn put_back(&self, mut kept: VecDeque<Queued>) {
        let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        kept.extend(items.drain(..));
        while kept.len() > QUEUE_CAPACITY {
            kept.pop_back();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        *items = kept;
    }

    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Events dropped so far: queue full, expired, or over the rate.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn posted(&self) -> u64 {
        self.posted.load(Ordering::Relaxed)
    }
}

/// Follows the supervisor's published states and queues the events between each two.
pub async fn watch_states(mut states: watch::Receiver<Arc<Published>>, queue: Arc<Queue>) {
    let mut last: BTreeMap<String, PodStatus> = BTreeMap::new();
    loop {
        let published = states.borrow_and_update().clone();
        let mut now = BTreeMap::new();
        for pod in &published.status.pods {
            for draft in derive::changes(last.get(&pod.uid), pod) {
                queue.push(draft);
            }
            now.insert(pod.uid.clone(), pod.clone());
        }
        last = now;
        if states.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(n: usize) -> derive::Draft {
        derive::Draft {
            namespace: "kube-system".into(),
            pod: format!("p{n}"),
            static_uid: format!("u{n}"),
            field_path: "spec.containers{c}".into(),
            kind: derive::EventType::Normal,
            reason: "Started",
            message: "Started container c".into(),
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let queue = Queue::default();
        for n in 0..QUEUE_CAPACITY + 3 {
            queue.push(draft(n));
        }
        assert_eq!(queue.len(), QUEUE_CAPACITY);
        assert_eq!(queue.dropped(), 3);
        let mut taken = queue.take();
        assert_eq!(taken.front().unwrap().draft.pod, "p0");
        queue.push(draft(1000));
        taken.truncate(QUEUE_CAPACITY);
        queue.put_back(taken);
        // The older drafts come first; the newest one no longer fits.
        assert_eq!(queue.len(), QUEUE_CAPACITY);
        assert_eq!(queue.dropped(), 4);
        assert_eq!(queue.take().front().unwrap().draft.pod, "p0");
    }
}
