//! Bootstrap-token discovery, as kubeadm's `discovery/token`: read `kube-public/cluster-info`
//! from the endpoint without trusting the server yet, check the token's JWS signature over its
//! kubeconfig, check the CA in it against the pins (SHA-256 of the SubjectPublicKeyInfo), then
//! read it again over TLS verified with that CA and require the same bytes. Until the deadline,
//! failures that time can cure (nothing listening yet, a 5xx, no signature for the token yet)
//! are retried; a bad signature, a wrong CA or a certificate the pinned CA did not sign are not.
//! Network only (the endpoint); no host paths. Every answer is read with a bound.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::Empty;
use k8s_openapi::api::core::v1::ConfigMap;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

pub use super::cluster_info::ClusterInfo;
use super::cluster_info::{self, ClusterInfoError, CLUSTER_INFO, KUBECONFIG_KEY, KUBE_PUBLIC};
use super::jws;
use super::token::{BootstrapToken, CaCertHash};
use crate::http::tls::{client_config, ServerTrust};

/// A ConfigMap holds at most 1 MiB of data; its JSON a little more.
pub(super) const MAX_ANSWER: usize = 2 * 1024 * 1024;
/// Pause between attempts. kubeadm's `DiscoveryRetryInterval` is 5s; a shorter one lets a join
/// start as soon as the API server answers.
pub(super) const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// One attempt's bound within the overall timeout.
pub(super) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why discovery failed; every message names the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    #[error("discovery endpoint {endpoint:?} is not host:port: {detail}")]
    Endpoint { endpoint: String, detail: String },
    #[error("cannot read ConfigMap kube-public/cluster-info from {endpoint} within {}s: {detail}", waited.as_secs())]
    Unreachable {
        endpoint: String,
        detail: String,
        waited: Duration,
    },
    #[error(
        "ConfigMap kube-public/cluster-info at {endpoint} has no JWS signature for token ID \
         {token_id:?} (waited {}s): the token is unknown to this cluster or has expired",
        waited.as_secs()
    )]
    NoSignature {
        endpoint: String,
        token_id: String,
        waited: Duration,
    },
    #[error(
        "the JWS signature for token ID {token_id:?} in ConfigMap kube-public/cluster-info at \
         {endpoint} does not match: the token secret is wrong, or the server is not who it claims"
    )]
    BadSignature { endpoint: String, token_id: String },
    #[error("{endpoint}: {source}")]
    ClusterInfo {
        endpoint: String,
        #[source]
        source: ClusterInfoError,
    },
    #[error(
        "the cluster CA at {endpoint} ({}) matches none of the pinned hashes ({})",
        found.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", "),
        pins.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(", ")
    )]
    WrongCaHash {
        endpoint: String,
        found: Vec<CaCertHash>,
        pins: Vec<CaCertHash>,
    },
    #[error("the API server at {endpoint} failed TLS verification with the pinned CA: {detail}")]
    Untrusted { endpoint: String, detail: String },
    #[error(
        "ConfigMap kube-public/cluster-info at {endpoint} changed between the unverified and the \
         verified read"
    )]
    Changed { endpoint: String },
}

impl DiscoveryError {
    pub fn hint(&self) -> String {
        match self {
            DiscoveryError::Endpoint { .. } => {
                "give the API server endpoint as host:port, e.g. 10.0.0.1:6443".into()
            }
            DiscoveryError::Unreachable { .. } => {
                "is the API server running and reachable from this machine (the endpoint boot init \
                 printed)? a longer discovery timeout helps while it is starting"
                    .into()
            }
            DiscoveryError::NoSignature { .. } => {
                "create a new token on a control-plane node with `boot token create \
                 --print-join-command` (tokens expire after 24h by default)"
                    .into()
            }
            DiscoveryError::BadSignature { .. } => {
                "check the token; `boot token list` on a control-plane node shows the valid ones"
                    .into()
            }
            DiscoveryError::ClusterInfo { .. } => {
                "the control plane's cluster-info is damaged; re-run `boot init phase \
                 bootstrap-token` on a control-plane node"
                    .into()
            }
            DiscoveryError::WrongCaHash { .. } | DiscoveryError::Untrusted { .. } => {
                "check --discovery-token-ca-cert-hash against `boot token create \
                 --print-join-command` on a control-plane node; a mismatch can also mean \
                 someone is intercepting the connection"
                    .into()
            }
            DiscoveryError::Changed { .. } => {
                "retry; if it happens again someone may be intercepting the connection".into()
            }
        }
    }
}

/// A `host:port` to dial; IPv6 hosts in brackets.
pub(super) struct Target {
    pub(super) endpoint: String,
    host: String,
    port: u16,
}

impl Target {
    pub(super) fn parse(endpoint: &str) -> Result<Target, DiscoveryError> {
        let bad = |detail: &str| DiscoveryError::Endpoint {
            endpoint: endpoint.to_string(),
            detail: detail.to_string(),
        };
        let (host, port) = endpoint.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number 1-65535"))?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']').ok_or_else(|| bad("unclosed ["))?,
            None if host.contains(':') => return Err(bad("an IPv6 address needs [brackets]")),
            None => host,
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
        if host.is_empty() || port == 0 || !host.chars().all(plain) {
            return Err(bad("the host must be an IP address or a DNS name"));
        }
        Ok(Target {
            endpoint: endpoint.to_string(),
            host: host.to_string(),
            port,
        })
    }
}

/// Discovers the cluster at `endpoint` with `token`, trusting its CA only if it matches one of
/// `pins`. An empty `pins` skips the CA check (kubeadm's `unsafeSkipCAVerification`; the JWS is
/// still checked) and returns after the first read.
pub async fn discover(
    endpoint: &str,
    token: &BootstrapToken,
    pins: &[CaCertHash],
    timeout: Duration,
) -> Result<ClusterInfo, DiscoveryError> {
    let target = Target::parse(endpoint)?;
    let started = Instant::now();
    let deadline = started + timeout;
    let unverified = read_signed(
        &target,
        &ServerTrust::UnverifiedPinnedAfterwards,
        token,
        started,
        deadline,
    )
    .await?;
    let info = cluster_info::parse(&unverified).map_err(|source| DiscoveryError::ClusterInfo {
        endpoint: target.endpoint.clone(),
        source,
    })?;
    if pins.is_empty() {
        return Ok(info);
    }
    let ders = info.ca_ders();
    let found: Vec<CaCertHash> = ders.iter().filter_map(|d| CaCertHash::of(d).ok()).collect();
    if !found.iter().any(|hash| pins.contains(hash)) {
        return Err(DiscoveryError::WrongCaHash {
            endpoint: target.endpoint,
            found,
            pins: pins.to_vec(),
        });
    }
    let verified =
        read_signed(&target, &ServerTrust::Roots(ders), token, started, deadline).await?;
    if verified != unverified {
        return Err(DiscoveryError::Changed {
            endpoint: target.endpoint,
        });
    }
    Ok(info)
}

/// How one read failed: worth retrying until the deadline, or final; or the server said the
/// object is not there or not readable anonymously (404, 403), which token discovery retries
/// (the API server may still be setting it up) and file discovery accepts, as kubeadm's.
pub(super) enum Attempt {
    Retry(DiscoveryError),
    Final(DiscoveryError),
    Absent(DiscoveryError),
}

/// Reads `cluster-info` until its kubeconfig carries a valid signature for `token`, retrying
/// what time can cure.
async fn read_signed(
    target: &Target,
    trust: &ServerTrust,
    token: &BootstrapToken,
    started: Instant,
    deadline: Instant,
) -> Result<String, DiscoveryError> {
    loop {
        let attempt_deadline = deadline.min(Instant::now() + ATTEMPT_TIMEOUT);
        let outcome =
            match tokio::time::timeout_at(attempt_deadline, read_once(target, trust)).await {
                Err(_) => Attempt::Retry(unreachable(target, "no answer".into(), started)),
                Ok(Err(attempt)) => attempt,
                Ok(Ok(config_map)) => match check_signature(target, &config_map, token, started) {
                    Ok(kubeconfig) => return Ok(kubeconfig),
                    Err(attempt) => attempt,
                },
            };
        let error = match outcome {
            Attempt::Final(error) => return Err(error),
            Attempt::Retry(error) | Attempt::Absent(error) => error,
        };
        if Instant::now() + RETRY_INTERVAL >= deadline {
            return Err(with_waited(error, started.elapsed()));
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

fn check_signature(
    target: &Target,
    config_map: &ConfigMap,
    token: &BootstrapToken,
    started: Instant,
) -> Result<String, Attempt> {
    let data = config_map.data.clone().unwrap_or_default();
    let Some(kubeconfig) = data.get(KUBECONFIG_KEY) else {
        return Err(Attempt::Final(DiscoveryError::ClusterInfo {
            endpoint: target.endpoint.clone(),
            source: ClusterInfoError::Missing("kubeconfig key"),
        }));
    };
    let Some(signature) = data.get(&jws::signature_key(token)) else {
        return Err(Attempt::Retry(DiscoveryError::NoSignature {
            endpoint: target.endpoint.clone(),
            token_id: token.id().to_string(),
            waited: started.elapsed(),
        }));
    };
    if !jws::is_valid(signature, kubeconfig, token) {
        return Err(Attempt::Final(DiscoveryError::BadSignature {
            endpoint: target.endpoint.clone(),
            token_id: token.id().to_string(),
        }));
    }
    Ok(kubeconfig.clone())
}

pub(super) fn unreachable(target: &Target, detail: String, started: Instant) -> DiscoveryError {
    DiscoveryError::Unreachable {
        endpoint: target.endpoint.clone(),
        detail,
        waited: started.elapsed(),
    }
}

pub(super) fn with_waited(error: DiscoveryError, elapsed: Duration) -> DiscoveryError {
    match error {
        DiscoveryError::Unreachable {
            endpoint, detail, ..
        } => DiscoveryError::Unreachable {
            endpoint,
            detail,
            waited: elapsed,
        },
        DiscoveryError::NoSignature {
            endpoint, token_id, ..
        } => DiscoveryError::NoSignature {
            endpoint,
            token_id,
            waited: elapsed,
        },
        other => other,
    }
}

/// One anonymous GET of `path` on `target` over TLS with `trust`; the answer read up to
/// [`MAX_ANSWER`] bytes.
pub(super) async fn tls_get(
    target: &Target,
    trust: &ServerTrust,
    path: &str,
    accept: &str,
) -> Result<crate::http::client::BoundedResponse, Attempt> {
    let started = Instant::now();
    let retry = |detail: String| Attempt::Retry(unreachable(target, detail, started));
    let config = client_config(trust).map_err(|e| {
        Attempt::Final(DiscoveryError::ClusterInfo {
            endpoint: target.endpoint.clone(),
            source: ClusterInfoError::Parse(e.to_string()),
        })
    })?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| retry(format!("cannot connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(target.host.clone()).map_err(|e| {
        Attempt::Final(DiscoveryError::Endpoint {
            endpoint: target.endpoint.clone(),
            detail: e.to_string(),
        })
    })?;
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| match trust {
            // The pinned CA did not sign what the server shows: time will not fix that.
            ServerTrust::Roots(_) if is_certificate_error(&e) => {
                Attempt::Final(DiscoveryError::Untrusted {
                    endpoint: target.endpoint.clone(),
                    detail: e.to_string(),
                })
            }
            _ => retry(format!("TLS handshake failed: {e}")),
        })?;
    let authority = match target.host.contains(':') {
        true => format!("[{}]:{}", target.host, target.port),
        false => format!("{}:{}", target.host, target.port),
    };
    let request = Request::get(path)
        .header(header::HOST, authority)
        .header(header::ACCEPT, accept)
        .header(
            header::USER_AGENT,
            concat!("boot/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| retry(e.to_string()))?;
    crate::http::client::send(tls, request, MAX_ANSWER)
        .await
        .map_err(|e| retry(format!("HTTP exchange failed: {e}")))
}

/// One anonymous GET of `cluster-info` over TLS with `trust`.
pub(super) async fn read_once(target: &Target, trust: &ServerTrust) -> Result<ConfigMap, Attempt> {
    let started = Instant::now();
    let path = format!("/api/v1/namespaces/{KUBE_PUBLIC}/configmaps/{CLUSTER_INFO}");
    let response = tls_get(target, trust, &path, "application/json").await?;
    if response.status != StatusCode::OK {
        let body =
            String::from_utf8_lossy(&response.body[..response.body.len().min(300)]).into_owned();
        let detail = format!("HTTP {}: {}", response.status, body.trim());
        if matches!(
            response.status,
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        ) {
            return Err(Attempt::Absent(unreachable(target, detail, started)));
        }
        return Err(Attempt::Retry(unreachable(target, detail, started)));
    }
    if response.truncated {
        return Err(Attempt::Final(DiscoveryError::ClusterInfo {
            endpoint: target.endpoint.clone(),
            source: ClusterInfoError::Parse(format!(
                "the answer is larger than {MAX_ANSWER} bytes"
            )),
        }));
    }
    serde_json::from_slice::<ConfigMap>(&response.body).map_err(|e| {
        Attempt::Final(DiscoveryError::ClusterInfo {
            endpoint: target.endpoint.clone(),
            source: ClusterInfoError::Parse(format!("the answer is not a ConfigMap: {e}")),
        })
    })
}

/// A handshake that failed on the server's certificate (rustls reports it as `InvalidData`
/// carrying a `rustls::Error::InvalidCertificate`).
fn is_certificate_error(error: &std::io::Error) -> bool {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_host_and_port() {
        let t = Target::parse("10.0.0.1:6443").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("10.0.0.1", 6443));
        let t = Target::parse("[fd00::1]:6443").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("fd00::1", 6443));
        let t = Target::parse("cp.example.com:443").unwrap();
        assert_eq!(t.host, "cp.example.com");
        for bad in [
            "10.0.0.1",
            "fd00::1:6443",
            ":6443",
            "h:0",
            "h:99999",
            "h/x:1",
            "[fd00::1:6443",
            "https://h:1",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_naming_the_endpoint_after_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = listener.local_addr().unwrap().to_string();
        drop(listener);
        let token = BootstrapToken::generate();
        let started = std::time::Instant::now();
        let err = discover(&endpoint, &token, &[], Duration::from_millis(1500))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(err, DiscoveryError::Unreachable { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&endpoint) && text.contains("cannot connect"),
            "{text}"
        );
    }
}
