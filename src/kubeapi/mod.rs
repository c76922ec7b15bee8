//! The one Kubernetes API client every part of boot talks to the API server with: a client built
//! from a kubeconfig file, kubeconfig bytes or a discovered server and its credentials
//! ([`Caller`]); every call bounded by one timeout and transient failures retried a few times
//! ([`Caller::call`]); client errors as one line without `Debug` text ([`describe`]) and as
//! user-facing errors naming the object, the identity and a hint ([`ApiError`]); kubeadm's
//! create-or-update ([`put`]).
//!
//! At the bottom: imports nothing of boot. Touches no host path but the kubeconfig it is given.

mod client;
mod error;
mod write;

pub use client::{is_transient, Caller, Failure};
pub use error::{describe, hint_for, status_code, ApiError};
pub use write::{cluster_scoped, create, kube_public, kube_system, put, Outcome};

/// The namespace of the control plane's objects.
pub const KUBE_SYSTEM: &str = "kube-system";
/// The namespace readable by everyone (`cluster-info`).
pub const KUBE_PUBLIC: &str = "kube-public";
