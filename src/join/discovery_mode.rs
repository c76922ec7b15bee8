//! How `boot join` finds the cluster and why it trusts it, as kubeadm's `discovery.For`:
//! bootstrap-token discovery against an endpoint (the CA pinned, or with kubeadm's
//! `unsafeSkipCAVerification` not pinned, the token's JWS checked either way), or file discovery
//! ([`super::file_discovery`]); and what the join authenticates with afterwards
//! ([`JoinCredentials`]: the bootstrap token, else for file discovery the kubeconfig user's token
//! or client certificate). Network, and the files the discovery kubeconfig names.

use std::io::Write;
use std::time::Duration;

use super::file_discovery::{self, DiscoveryFile, FileDiscoveryError, WebRoots};
use super::{discover, BootstrapToken, CaCertHash, ClusterInfo, DiscoveryError, JoinCredentials};

#[derive(Debug, Clone)]
pub enum JoinDiscovery {
    /// `pins` empty: the CA is not verified (the CLI allows that only when asked explicitly).
    Token {
        endpoint: String,
        token: BootstrapToken,
        pins: Vec<CaCertHash>,
    },
    File {
        file: DiscoveryFile,
        tls_bootstrap_token: Option<BootstrapToken>,
    },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JoinDiscoveryError {
    #[error(transparent)]
    Token(#[from] DiscoveryError),
    #[error(transparent)]
    File(#[from] FileDiscoveryError),
    #[error("the discovery file {0} has no credentials for its user (a token, or a client certificate and key), and no --tls-bootstrap-token (or --token) was given")]
    NoCredentials(String),
}

impl JoinDiscoveryError {
    pub fn hint(&self) -> String {
        match self {
            JoinDiscoveryError::Token(e) => e.hint(),
            JoinDiscoveryError::File(e) => e.hint(),
            JoinDiscoveryError::NoCredentials(_) => "give --token (`boot token create` on a control-plane node makes one), or discovery.tlsBootstrapToken".into(),
        }
    }
}

impl JoinDiscovery {
    /// The cluster's API server and CA, and what to authenticate with.
    pub async fn discover(
        &self,
        timeout: Duration,
        out: &mut dyn Write,
    ) -> Result<(ClusterInfo, JoinCredentials), JoinDiscoveryError> {
        match self {
            JoinDiscovery::Token {
                endpoint,
                token,
                pins,
            } => {
                let _ = writeln!(
                    out,
                    "[discovery] Using bootstrap token discovery against {endpoint}"
                );
                let info = discover(endpoint, token, pins, timeout).await?;
                let checked = match pins.is_empty() {
                    true => "the CA is NOT verified (unsafe skip of CA verification)",
                    false => "the CA matches the pinned hash",
                };
                let _ = writeln!(out, "[discovery] Cluster info signature and contents are valid and {checked}; API server {}", info.server);
                Ok((info, JoinCredentials::from(token)))
            }
            JoinDiscovery::File {
                file,
                tls_bootstrap_token,
            } => {
                let name = match file {
                    DiscoveryFile::Path(path) => path.display().to_string(),
                    DiscoveryFile::Url(url) => url.clone(),
                };
                let _ = writeln!(out, "[discovery] Using file discovery with {name}");
                let found = file_discovery::discover_file(file, WebRoots::system, timeout).await?;
                let how = match found.refreshed {
                    true => "its cluster-info, read over TLS verified with the file's CA",
                    false => "the file's cluster (the server does not let cluster-info be read; its certificate is valid)",
                };
                let _ = writeln!(
                    out,
                    "[discovery] Using {how}; API server {}",
                    found.info.server
                );
                // kubeadm's order: a given bootstrap token wins over the file's user.
                let credentials = match (tls_bootstrap_token, found.credentials) {
                    (Some(token), _) => JoinCredentials::from(token),
                    (None, Some(user)) => {
                        let _ = writeln!(
                            out,
                            "[discovery] Using {} of the discovery file's user as the join's credentials",
                            user.describe()
                        );
                        user
                    }
                    (None, None) => return Err(JoinDiscoveryError::NoCredentials(name)),
                };
                Ok((found.info, credentials))
            }
        }
    }
}
