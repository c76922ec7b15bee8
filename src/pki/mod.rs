//! The cluster PKI (reference §2): CAs, leaf certificates and the service-account key pair,
//! issued from the certificate profiles kept as data in `pki/` at the crate root.
//!
//! (Being built: see the PKI contract in the PR/issue notes.)
