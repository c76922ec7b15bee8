//! etcd cluster membership for stacked control-plane nodes: list, add as a learner, promote once
//! caught up, remove — through etcd's v3 JSON gateway on its client URLs (3.4, 3.5 and 3.6 serve
//! it), with an etcd client certificate. Used by `boot join` (add, promote, roll back) and `boot
//! reset` (remove this node's member); raw reads for `boot secrets rotate-key` (`kv`). Reads the client certificate files it is given; touches no
//! other host path.

pub mod client;
pub mod kv;
pub mod local;
pub mod members;
pub mod promote;
pub mod snapshot;

use std::path::PathBuf;
use std::time::Duration;

pub use client::{ClientFiles, ClientUrl, EtcdClient, Identity};
pub use members::{Member, MemberId};

/// etcd's refusal while a learner is behind its leader (`ErrLearnerNotReady`).
const LEARNER_NOT_READY: &str = "can only promote a learner member which is in sync with leader";
/// etcd's refusal to promote a voter (`ErrMemberNotLearner`).
const NOT_A_LEARNER: &str = "can only promote a learner member";

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd client URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("no etcd endpoint to talk to")]
    NoEndpoints,
    #[error("etcd client credentials {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
    #[error("no etcd endpoint answered: {}", tried.iter().map(|(e, r)| format!("{e}: {r}")).collect::<Vec<_>>().join("; "))]
    Unreachable { tried: Vec<(String, String)> },
    #[error("etcd at {endpoint} refused {call}: {message}")]
    Refused {
        endpoint: String,
        call: String,
        message: String,
    },
    #[error("etcd at {endpoint} answered something unexpected: {reason}")]
    BadAnswer { endpoint: String, reason: String },
    #[error("etcd member {member} was not promoted within {:.0}s ({attempts} attempts); last: {last}", after.as_secs_f64())]
    NotPromoted {
        member: MemberId,
        after: Duration,
        attempts: u32,
        last: String,
    },
}

impl EtcdError {
    /// The learner has not caught up with the leader yet.
    pub fn is_learner_not_ready(&self) -> bool {
        matches!(self, EtcdError::Refused { message, .. } if message.contains(LEARNER_NOT_READY))
    }

    /// The member promoted is a voter already.
    pub fn is_not_a_learner(&self) -> bool {
        matches!(self, EtcdError::Refused { message, .. }
            if message.contains(NOT_A_LEARNER) && !message.contains(LEARNER_NOT_READY))
    }

    /// etcd's `ErrUnhealthy`: a reconfiguration refused because the members that would remain
    /// have not all been connected long enough.
    pub fn is_unhealthy_cluster(&self) -> bool {
        matches!(self, EtcdError::Refused { message, .. } if message.contains("unhealthy cluster"))
    }

    /// The member is not (or no longer) in the cluster. etcd gives the same answer to an add whose
    /// new member ID is one it removed (its `ErrIDRemoved`).
    pub fn is_member_not_found(&self) -> bool {
        matches!(self, EtcdError::Refused { message, .. } if message.contains("member not found"))
    }
}
