//! What the supervisor publishes for the agent's face in the API ([`crate::node`]): after every
//! turn of its loop, the status snapshot and the static pods it runs, on a tokio `watch` channel.
//! Publishing never waits: the node side reads the latest value when it gets to it, and the
//! supervisor never waits on the node side (the API server may be down; it is one of the pods).

use std::sync::Arc;

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

/// The supervisor's end: publishes a new state only when it differs from the last one.
#[derive(Debug)]
pub struct Publisher {
    tx: watch::Sender<Arc<Published>>,
    /// The node side's sync state, shown in `boot status`.
    api_sync: watch::Receiver<ApiSyncStatus>,
}

/// The node side's end.
#[derive(Debug)]
pub struct Subscription {
    pub states: watch::Receiver<Arc<Published>>,
    pub api_sync: watch::Sender<ApiSyncStatus>,
}

/// A connected pair, starting from `initial`.
pub fn channel(initial: Published) -> (Publisher, Subscription) {
    let (tx, states) = watch::channel(Arc::new(initial));
    let (api_sync_tx, api_sync) = watch::channel(ApiSyncStatus::default());
    (
        Publisher { tx, api_sync },
        Subscription {
            states,
            api_sync: api_sync_tx,
        },
    )
}

impl Publisher {
    pub fn publish(&self, status: AgentStatus, pods: impl FnOnce() -> Vec<Arc<StaticPod>>) {
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
