//! A Kubernetes client for one kubeconfig file (`admin.conf` or `super-admin.conf` under the
//! kubernetes directory), and [`Caller::call`], which bounds an API call by
//! `timeouts.kubernetesAPICall` and retries transient failures a few times.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::time::Instant;

use super::error::{describe, hint_for, PostBootError};

/// Attempts per API call. kubeadm polls every `APICallRetryInterval` (500ms) until
/// `KubernetesAPICall` runs out; post-boot runs only after the API server reported healthy, so a
/// few quick retries cover a restart without making a dead server cost the whole minute.
const MAX_ATTEMPTS: u32 = 5;
/// The first pause between attempts, doubled after each (100, 200, 400, 800 ms).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A client and the file its identity comes from.
pub struct Caller {
    pub client: Client,
    pub kubeconfig: PathBuf,
    /// The `server:` URL, for hints.
    pub server: String,
    pub timeout: Duration,
}

/// How one bounded, retried call ended without a result.
pub enum Failure {
    /// The API server or the connection said no (the last attempt's error).
    Kube(kube::Error),
    /// Time ran out; the last transient failure, if one came before.
    TimedOut(Option<kube::Error>),
}

impl Caller {
    /// Reads `path` and builds a client; every call is bounded by `timeout`.
    pub async fn from_file(path: &Path, timeout: Duration) -> Result<Caller, PostBootError> {
        install_crypto_provider();
        let kubeconfig_error = |detail: String, hint: &str| PostBootError::Kubeconfig {
            path: path.to_path_buf(),
            detail,
            hint: hint.to_string(),
        };
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
            kubeconfig_error(
                e.to_string(),
                "run `boot init phase kubeconfig` to write it",
            )
        })?;
        let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| {
                kubeconfig_error(
                    e.to_string(),
                    "remove it and run `boot init phase kubeconfig` to write it anew",
                )
            })?;
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let server = config.cluster_url.to_string();
        let client = client_with_nodelay(config).map_err(|e| {
            kubeconfig_error(
                describe(&e),
                "its client certificate, key or certificate-authority-data is not usable; \
                 remove it and run `boot init phase kubeconfig`",
            )
        })?;
        Ok(Caller {
            client,
            kubeconfig: path.to_path_buf(),
            server,
            timeout,
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or `MAX_ATTEMPTS` or the timeout run
    /// out. Only transient failures ([`is_transient`]) are retried.
    pub async fn call<T, F, Fut>(&self, mut attempt: F) -> Result<T, Failure>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, kube::Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut backoff = FIRST_BACKOFF;
        let mut last = None;
        let mut tried = 0;
        loop {
            tried += 1;
            let error = match tokio::time::timeout_at(deadline, attempt(self.client.clone())).await
            {
                Err(_) => return Err(Failure::TimedOut(last)),
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) => error,
            };
            if !is_transient(&error) || tried >= MAX_ATTEMPTS {
                return Err(Failure::Kube(error));
            }
            if Instant::now() + backoff >= deadline {
                return Err(Failure::TimedOut(Some(error)));
            }
            last = Some(error);
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
    }

    /// The user-facing error for a failed `action` on `object`.
    pub fn error(&self, action: &'static str, object: &str, failure: Failure) -> PostBootError {
        match failure {
            Failure::TimedOut(last) => PostBootError::Timeout {
                action,
                object: object.to_string(),
                kubeconfig: self.kubeconfig.clone(),
                after: self.timeout,
                last: last.as_ref().map(describe),
            },
            Failure::Kube(e) => {
                let detail = describe(&e);
                PostBootError::Api {
                    action,
                    object: object.to_string(),
                    kubeconfig: self.kubeconfig.clone(),
                    hint: hint_for(status_code(&e), &detail, &self.server),
                    detail,
                }
            }
        }
    }
}

/// The HTTP status of an API error, `None` for connection and TLS failures.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Worth another try: the connection failed (refused, reset, TLS handshake cut short) or the
/// server was momentarily unable to answer (429, 5xx), as client-go's retry rules treat them.
pub fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => status.code == 429 || status.code >= 500,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// kube's rustls client uses the process-wide crypto provider; this crate builds rustls with
/// `ring` only, so install it once. An error means one is already installed, which is fine.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// kube's client, built as `Client::try_from` builds it but with TCP_NODELAY: kube's connector
/// leaves Nagle on, so a request whose body goes out in a second segment waits for the server's
/// delayed ACK — about 40 ms per POST/PUT, most of post-boot's time. (Timeouts are applied per
/// call by [`Caller`], not in the connector.)
fn client_with_nodelay(config: kube::Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(
            |e: hyper_util::client::legacy::Error| -> Box<dyn std::error::Error + Send + Sync> {
                Box::new(e)
            },
        )
        .service(hyper);
    Ok(Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16) -> kube::Error {
        kube::Error::Api(Status::failure("", "").with_code(code).boxed())
    }

    #[test]
    fn only_server_trouble_is_retried() {
        assert!(is_transient(&api(503)));
        assert!(is_transient(&api(429)));
        assert!(!is_transient(&api(403)));
        assert!(!is_transient(&api(409)));
        assert_eq!(status_code(&api(404)), Some(404));
    }
}
