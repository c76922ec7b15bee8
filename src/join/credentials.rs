//! What a joining node authenticates with once discovery has found the cluster, as kubeadm's
//! TLS-bootstrap configuration: the bootstrap token (`--token`, `--tls-bootstrap-token`,
//! `discovery.tlsBootstrapToken`), or else the credentials of the discovery file's user — a token
//! or a client certificate and key (kubeadm's `HasAuthenticationCredentials`). Held in memory only;
//! the join reads `kubeadm-config` and `kubeadm-certs` with them.

use std::time::Duration;

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use super::{BootstrapToken, ClusterInfo};
use crate::kubeapi::Caller;

#[derive(Clone)]
pub enum JoinCredentials {
    /// A bootstrap token, or whatever bearer token the discovery file's user has.
    Token(SecretString),
    /// The discovery file user's client certificate (PEM) and its key.
    ClientCertificate {
        cert_pem: String,
        key_pem: SecretString,
    },
}

impl std::fmt::Debug for JoinCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

impl From<&BootstrapToken> for JoinCredentials {
    fn from(token: &BootstrapToken) -> JoinCredentials {
        JoinCredentials::Token(token.to_string().into())
    }
}

impl JoinCredentials {
    /// What they are, for messages (never the secret).
    pub fn describe(&self) -> &'static str {
        match self {
            JoinCredentials::Token(_) => "a token",
            JoinCredentials::ClientCertificate { .. } => "a client certificate",
        }
    }

    /// A client for the discovered server, trusting only its CA, authenticated with these
    /// credentials; every call bounded by `timeout`.
    pub fn caller(&self, info: &ClusterInfo, timeout: Duration) -> Result<Caller, String> {
        let url: http::Uri = info
            .server
            .parse()
            .map_err(|e| format!("server {:?} is not a URL: {e}", info.server))?;
        let mut config = kube::Config::new(url);
        config.root_cert = Some(info.ca_ders());
        config.default_namespace = "kube-system".into();
        match self {
            JoinCredentials::Token(token) => {
                config.auth_info.token = Some(token.clone());
            }
            JoinCredentials::ClientCertificate { cert_pem, key_pem } => {
                let base64 = base64::engine::general_purpose::STANDARD;
                config.auth_info.client_certificate_data = Some(base64.encode(cert_pem));
                config.auth_info.client_key_data =
                    Some(base64.encode(key_pem.expose_secret()).into());
            }
        }
        let identity = format!("the join's {}", self.describe().trim_start_matches("a "));
        Caller::from_config(config, identity, timeout)
    }
}
