//! Container probes with the kubelet's semantics (reference §7 "Probes", design §5).
//!
//! Split into the pure parts the agent feeds ([`spec`]: what to probe and how often, from a
//! container's `k8s-openapi` `Probe`; [`tracker`]: one probe's threshold state machine; [`set`]:
//! a container's startup/liveness/readiness trackers with the kubelet's gating) and the side
//! effects ([`run`] and the per-action modules [`http`], [`tcp`], [`exec`], [`grpc`]), which only
//! touch the network and spawn the exec probe's command. No host paths are read or written.

pub mod exec;
pub mod grpc;
mod grpc_wire;
pub mod http;
mod http_location;
pub(crate) mod insecure_tls;
mod run;
pub mod set;
pub mod spec;
pub mod tcp;
pub mod tracker;

pub use run::{run, ProbeResult};
pub use set::{DueProbe, ProbeSet, Verdict};
pub use spec::{ProbeAction, ProbeSettings, ProbeSpecError, Scheme};
pub use tracker::{ProbeKind, ProbeOutcomeChange, ProbeState, ProbeTracker};
