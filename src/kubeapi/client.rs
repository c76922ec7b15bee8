//! [`Caller`]: a Kubernetes client and the identity it calls with, and [`Caller::call`], which
//! bounds an API call by one timeout (`timeouts.kubernetesAPICall` for init and join) and retries
//! transient failures a few times.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::time::Instant;

use super::error::{describe, hint_for, status_code, ApiError};

/// Attempts per API call. kubeadm polls every `APICallRetryInterval` (500ms) until
/// `KubernetesAPICall` runs out; boot's callers run once the API server reported healthy, so a
/// few quick retries cover a restart without making a dead server cost the whole minute.
const MAX_ATTEMPTS: u32 = 5;
/// The first pause between attempts, doubled after each (100, 200, 400, 800 ms).
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// A client and the identity it calls with.
#[derive(Clone)]
pub struct Caller {
    pub client: Client,
    /// Whose identity the calls carry, for messages: the kubeconfig's path, or what a join
    /// authenticates with.
    pub identity: String,
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

impl Failure {
    /// The API status code of the final answer, `None` for a connection failure or a timeout.
    pub fn code(&self) -> Option<u16> {
        match self {
            Failure::Kube(e) => status_code(e),
            Failure::TimedOut(_) => None,
        }
    }

    /// What happened, as one line: the API server's answer or the connection's error, or that
    /// none came within `after`.
    pub fn detail(&self, after: Duration) -> String {
        match self {
            Failure::Kube(e) => describe(e),
            Failure::TimedOut(last) => format!(
                "no answer within {}s{}",
                after.as_secs_f64(),
                last.as_ref()
                    .map(|l| format!(" (earlier attempt: {})", describe(l)))
                    .unwrap_or_default()
            ),
        }
    }
}

impl Caller {
    /// Reads the kubeconfig at `path` and builds a client; every call is bounded by `timeout`.
    pub async fn from_file(path: &Path, timeout: Duration) -> Result<Caller, ApiError> {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
            kubeconfig_error(
                path,
                e.to_string(),
                "run `boot init phase kubeconfig` to write it",
            )
        })?;
        Caller::from_kubeconfig(path, kubeconfig, timeout).await
    }

    /// A client from kubeconfig bytes not written yet (a join's rendered admin.conf); `path` is
    /// where they will be, for messages.
    pub async fn from_bytes(
        path: &Path,
        bytes: &[u8],
        timeout: Duration,
    ) -> Result<Caller, ApiError> {
        let parsed = std::str::from_utf8(bytes)
            .map_err(|e| e.to_string())
            .and_then(|text| Kubeconfig::from_yaml(text).map_err(|e| e.to_string()))
            .map_err(|detail| kubeconfig_error(path, detail, "it was rendered wrongly"))?;
        Caller::from_kubeconfig(path, parsed, timeout).await
    }

    async fn from_kubeconfig(
        path: &Path,
        kubeconfig: Kubeconfig,
        timeout: Duration,
    ) -> Result<Caller, ApiError> {
        install_crypto_provider();
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| {
                kubeconfig_error(
                    path,
                    e.to_string(),
                    "remove it and run `boot init phase kubeconfig` to write it anew",
                )
            })?;
        Caller::from_config(config, path.display().to_string(), timeout).map_err(|detail| {
            kubeconfig_error(
                path,
                detail,
                "its client certificate, key or certificate-authority-data is not usable; \
                 remove it and run `boot init phase kubeconfig`",
            )
        })
    }

    /// A client from a configuration built in memory (a discovered server, its CA and a join's
    /// credentials); `identity` names them in messages. The error is the client's, described.
    pub fn from_config(
        mut config: Config,
        identity: String,
        timeout: Duration,
    ) -> Result<Caller, String> {
        install_crypto_provider();
        config.connect_timeout = Some(timeout);
        config.read_timeout = Some(timeout);
        config.write_timeout = Some(timeout);
        let server = config.cluster_url.to_string();
        let client = client_with_nodelay(config).map_err(|e| describe(&e))?;
        Ok(Caller {
            client,
            identity,
            server,
            timeout,
        })
    }

    /// The same identity with another bound per call (a watch outlasts every other call).
    pub fn with_timeout(mut self, timeout: Duration) -> Caller {
        self.timeout = timeout;
        self
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
    pub fn error(&self, action: &'static str, object: &str, failure: Failure) -> ApiError {
        match failure {
            Failure::TimedOut(last) => ApiError::Timeout {
                action,
                object: object.to_string(),
                identity: self.identity.clone(),
                after: self.timeout,
                last: last.as_ref().map(describe),
            },
            Failure::Kube(e) => {
                let detail = describe(&e);
                ApiError::Api {
                    action,
                    object: object.to_string(),
                    identity: self.identity.clone(),
                    code: status_code(&e),
                    hint: hint_for(status_code(&e), &detail, &self.server),
                    detail,
                }
            }
        }
    }
}

fn kubeconfig_error(path: &Path, detail: String, hint: &str) -> ApiError {
    ApiError::Kubeconfig {
        path: path.to_path_buf(),
        detail,
        hint: hint.to_string(),
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

    fn caller(timeout: Duration) -> Caller {
        let config = Config::new("https://127.0.0.1:1".parse().unwrap());
        Caller::from_config(config, "test".into(), timeout).unwrap()
    }

    #[tokio::test]
    async fn a_transient_failure_is_retried_and_a_final_one_is_not() {
        let caller = caller(Duration::from_secs(5));
        let mut tries = 0;
        let answer = caller
            .call(|_| {
                tries += 1;
                let outcome = if tries < 3 { Err(api(503)) } else { Ok(tries) };
                async move { outcome }
            })
            .await;
        assert!(matches!(answer, Ok(3)));
        let mut tries = 0;
        let answer: Result<(), Failure> = caller
            .call(|_| {
                tries += 1;
                async { Err(api(403)) }
            })
            .await;
        assert_eq!(answer.err().and_then(|f| f.code()), Some(403));
        assert_eq!(tries, 1, "a refusal is final");
    }

    #[tokio::test]
    async fn a_call_that_never_answers_times_out_with_the_last_failure() {
        let caller = caller(Duration::from_millis(150));
        let mut tries = 0;
        let answer: Result<(), Failure> = caller
            .call(|_| {
                tries += 1;
                let first = tries == 1;
                async move {
                    if first {
                        return Err(api(503));
                    }
                    std::future::pending().await
                }
            })
            .await;
        let Err(Failure::TimedOut(Some(last))) = answer else {
            panic!("not a timeout with the earlier failure");
        };
        let error = caller.error(
            "get",
            "ConfigMap kube-system/x",
            Failure::TimedOut(Some(last)),
        );
        assert!(
            error.to_string().contains("(earlier attempt: 503"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn unusable_kubeconfig_bytes_name_their_path() {
        let err = Caller::from_bytes(Path::new("/k/admin.conf"), b"\xff", Duration::from_secs(1))
            .await
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("cannot use kubeconfig /k/admin.conf"),
            "{err}"
        );
    }
}
