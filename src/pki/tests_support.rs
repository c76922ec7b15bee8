//! Shared fixtures for the PKI unit tests.

use std::net::IpAddr;

use super::{KeyAlgorithm, PkiRequest};

/// A request with kubeadm's defaults, node `node1` at 192.0.2.10 (TEST-NET-1, never contacted),
/// ECDSA keys so debug-build tests stay fast.
pub fn request() -> PkiRequest {
    let advertise: IpAddr = "192.0.2.10".parse().unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let mut req = PkiRequest::with_defaults("/nonexistent/pki", "node1", advertise);
    req.algorithm = KeyAlgorithm::EcdsaP256;
    req
}
