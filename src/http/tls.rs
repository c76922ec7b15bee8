//! TLS client configurations for [`super::client`]: verified against given CA roots, or
//! explicitly unverified for the one exchange that must read a server before trusting it
//! (bootstrap-token discovery reads `cluster-info`, then pins its CA and asks again over a
//! verified connection). Both use the ring provider. Touches no host path.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore};

/// How a client decides to trust the server's certificate.
#[derive(Debug, Clone)]
pub enum ServerTrust {
    /// Any certificate (its handshake signature is still checked). Only for an answer that is
    /// verified by other means afterwards: the caller pins what it read and asks again with
    /// [`ServerTrust::Roots`].
    UnverifiedPinnedAfterwards,
    /// Certificates chaining to one of these CA certificates (DER), naming the host dialled.
    Roots(Vec<Vec<u8>>),
}

/// Why a trust could not become a client configuration.
#[derive(Debug, thiserror::Error)]
#[error("the CA certificate cannot be used as a TLS root: {0}")]
pub struct TrustError(#[source] rustls::Error);

/// The client configuration for `trust`.
pub fn client_config(trust: &ServerTrust) -> Result<Arc<ClientConfig>, TrustError> {
    match trust {
        ServerTrust::UnverifiedPinnedAfterwards => Ok(crate::probe::insecure_tls::client_config()),
        ServerTrust::Roots(ders) => {
            let mut roots = RootCertStore::empty();
            for der in ders {
                roots
                    .add(CertificateDer::from(der.clone()))
                    .map_err(TrustError)?;
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(TrustError)?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        }
    }
}
