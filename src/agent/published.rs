//! What the supervisor publishes for the agent's face in the API ([`crate::node`]): after every
//! turn of its loop, the status snapshot and the static pods it runs, on a tokio `watch` channel,
//! and the time of that turn (the [`Heartbeat`]: the kubelet's PLEG health, which the Node's
//! `Ready` condition reports). Publishing never waits: the node side reads the latest value when
//! it gets to it, and the supervisor never waits on the node side (the API server may be down; it
//! is one of the pods).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::source::StaticPod;
use super::status::{AgentStatus, ApiSyncStatus};

/// One published state of the agent.
#[derive(Debug, Clone)]
pub struct Published {
    /// The status as `boot status` shows it (without the API sync line, which comes from the
    /// node side).
    pub status: AgentStatus,
    /// The static pods the agent runs, by the UID in `status.pods`.
    pub pods: Vec<Arc<StaticPod>>,
}

impl Published {
    pub fn pod(&self, uid: &str) -> Option<&Arc<StaticPod>> {
        self.pods.iter().find(|p| p.uid.as_str() == uid)
    }
}

/// When the supervisor's loop last turned (every relist period at least, 2 s by default).
#[derive(Debug, Clone)]
pub struct Heartbeat(Arc<Mutex<Instant>>);

impl Heartbeat {
    fn new() -> Heartbeat {
        Heartbeat(Arc::new(Mutex::new(Instant::now())))
    }

    fn beat(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long ago the loop last turned.
    pub fn since(&self) -> Duration {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).elapsed()
    }
}

/// The supervisor's end: publishes a new state only when it differs from the last one.
#[derive(Debug)]
pub struct Publisher {
    tx: watch::Sender<Arc<Published>>,
    heartbeat: Heartbeat,
    /// The node side's sync state, shown in `boot status`.
    api_sync: watch::Receiver<ApiSyncStatus>,
}

/// The node side's end.
#[derive(Debug)]
pub struct Subscription {
    pub states: watch::Receiver<Arc<Published>>,
    pub api_sync: watch::Sender<ApiSyncStatus>,
    pub heartbeat: Heartbeat,
}

/// A connected pair, starting from `initial`.
pub fn channel(initial: Published) -> (Publisher, Subscription) {
    let (tx, states) = watch::channel(Arc::new(initial));
    let (api_sync_tx, api_sync) = watch::channel(ApiSyncStatus::default());
    let heartbeat = Heartbeat::new();
    (
        Publisher {
            tx,
            api_sync,
            heartbeat: heartbeat.clone(),
        },
        Subscription {
            states,
            api_sync: api_sync_tx,
            heartbeat,
        },
    )
}

impl Publisher {
    /// Called after every turn of the loop: beats the heartbeat, and publishes `status` when it
    /// changed.
    pub fn publish(&self, status: AgentStatus, pods: impl FnOnce() -> Vec<Arc<StaticPod>>) {
        self.heartbeat.beat();
        self.tx.send_if_modified(|current| {
            if current.status == status {
                return false;
            }
            *current = Arc::new(Published {
                status,
                pods: pods(),
            });
            true
        });
    }

    pub fn api_sync(&self) -> ApiSyncStatus {
        self.api_sync.borrow().clone()
    }
}
