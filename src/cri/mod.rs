//! The one CRI client (design §9): what boot asks a worker's container runtime, through the
//! runtime's CRI gRPC API on its unix socket — never its command-line tools or its state
//! directories, as the kubelet only speaks CRI. [`endpoint`] finds the socket (kubeadm's
//! `--cri-socket` and socket detection); [`client`] makes the calls.
//!
//! The control plane's own static pod agent does not use this: it runs its pods itself
//! (`crate::runtime`). Workers run the host's kubelet, which talks to the same runtime.

pub mod client;
pub mod endpoint;

pub use client::{CgroupDriver, CriClient, CriError, PodSandbox, RuntimeVersion};
pub use endpoint::{detect, CriEndpoint, EndpointError};
