//! One JSON call to etcd's v3 gateway (`POST /v3/…`, served by every etcd since 3.4 on its client
//! URLs) over TLS with an etcd client certificate, on the one HTTP client ([`crate::http::client`]).
//! Endpoints are tried in order until one answers; an answer that is etcd's own error is final.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::Full;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::EtcdError;
use crate::http::client;

/// etcd answers with a few KB (a member list); the bound keeps a hostile peer from filling memory.
/// Calls that read keys and values choose their own bound ([`EtcdClient::call_bounded`]).
const MAX_ANSWER: usize = 1024 * 1024;
/// Credentials files are PEM of a few KB.
const MAX_PEM: u64 = 256 * 1024;

/// The files of an etcd client identity: kubeadm's etcd client talks with
/// `apiserver-etcd-client.{crt,key}` and trusts `etcd/ca.crt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientFiles {
    /// kubeadm's choice under a certificate directory (`/etc/kubernetes/pki`).
    pub fn apiserver_etcd_client(pki_dir: &Path) -> ClientFiles {
        ClientFiles {
            ca: pki_dir.join("etcd/ca.crt"),
            cert: pki_dir.join("apiserver-etcd-client.crt"),
            key: pki_dir.join("apiserver-etcd-client.key"),
        }
    }
}

/// A client URL of a member: `https://HOST:PORT`, validated once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientUrl {
    host: String,
    port: u16,
}

impl ClientUrl {
    pub fn parse(url: &str) -> Result<ClientUrl, EtcdError> {
        let bad = |reason: &str| EtcdError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| bad("only https:// client URLs are supported"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = rest
            .rsplit_once(':')
            .ok_or_else(|| bad("no port (https://HOST:PORT)"))?;
        let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.contains(['/', '@', '?', '#', ' ']) {
            return Err(bad("not a host name or address"));
        }
        Ok(ClientUrl {
            host: host.to_string(),
            port,
        })
    }

    fn authority(&self) -> String {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(_)) => format!("[{}]:{}", self.host, self.port),
            _ => format!("{}:{}", self.host, self.port),
        }
    }
}

impl std::fmt::Display for ClientUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{}", self.authority())
    }
}

/// Talks to a cluster through any of its client URLs.
#[derive(Clone)]
pub struct EtcdClient {
    endpoints: Vec<ClientUrl>,
    tls: Arc<rustls::ClientConfig>,
    /// Per call and endpoint: connect, handshake, request and answer.
    timeout: Duration,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdClient")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdClient {
    /// A client for `endpoints` (client URLs) with the identity in `files`.
    pub fn new(
        endpoints: &[String],
        files: &ClientFiles,
        timeout: Duration,
    ) -> Result<EtcdClient, EtcdError> {
        let (ca, cert, key) = (
            read_pem(&files.ca)?,
            read_pem(&files.cert)?,
            read_pem(&files.key)?,
        );
        let identity = Identity {
            ca: (&files.ca, &ca),
            cert: (&files.cert, &cert),
            key: (&files.key, &key),
        };
        EtcdClient::with_identity(endpoints, &identity, timeout)
    }

    /// A client with an identity held in memory (a joining node's, before it is written).
    pub fn with_identity(
        endpoints: &[String],
        identity: &Identity<'_>,
        timeout: Duration,
    ) -> Result<EtcdClient, EtcdError> {
        let endpoints = endpoints
            .iter()
            .map(|e| ClientUrl::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        Ok(EtcdClient {
            endpoints,
            tls: tls_config(identity)?,
            timeout,
        })
    }

    pub fn endpoints(&self) -> &[ClientUrl] {
        &self.endpoints
    }

    /// The same identity, other endpoints.
    pub fn with_endpoints(&self, endpoints: &[String]) -> Result<EtcdClient, EtcdError> {
        let endpoints = endpoints
            .iter()
            .map(|e| ClientUrl::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        Ok(EtcdClient {
            endpoints,
            ..self.clone()
        })
    }

    /// `POST path` with `body` as JSON to the first endpoint that answers.
    pub async fn call<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<R, EtcdError> {
        self.call_bounded(path, body, MAX_ANSWER).await
    }

    /// [`call`](Self::call) for answers that may be larger than a member list (a page of keys and
    /// values), read up to `max_answer` bytes.
    pub async fn call_bounded<B: Serialize, R: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        max_answer: usize,
    ) -> Result<R, EtcdError> {
        let json = serde_json::to_vec(body).expect("etcd requests serialize");
        let mut unreachable = Vec::new();
        for endpoint in &self.endpoints {
            match self.call_one(endpoint, path, &json, max_answer).await {
                Ok(answer) => return Ok(answer),
                Err(EtcdError::Unreachable { mut tried }) => unreachable.append(&mut tried),
                // A learner serves no cluster calls (etcd's own client skips learners too): one
                // that a join left running is not an answer, the next member may be.
                Err(EtcdError::Refused {
                    endpoint, message, ..
                }) if message.contains(LEARNER_REFUSAL) => unreachable.push((endpoint, message)),
                Err(other) => return Err(other),
            }
        }
        Err(EtcdError::Unreachable { tried: unreachable })
    }

    /// One endpoint; connection failures are [`EtcdError::Unreachable`] so the caller moves on.
    async fn call_one<R: DeserializeOwned>(
        &self,
        endpoint: &ClientUrl,
        path: &str,
        json: &[u8],
        max_answer: usize,
    ) -> Result<R, EtcdError> {
        let unreachable = |reason: String| EtcdError::Unreachable {
            tried: vec![(endpoint.to_string(), reason)],
        };
        let exchange = async {
            let tls = self.connect(endpoint).await?;
            client::send(tls, post(endpoint, path, json), max_answer)
                .await
                .map_err(|e| e.to_string())
        };
        let answer = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return Err(unreachable(format!("no answer within {:?}", self.timeout))),
            Ok(Err(reason)) => return Err(unreachable(reason)),
            Ok(Ok(answer)) => answer,
        };
        if answer.truncated {
            return Err(EtcdError::BadAnswer {
                endpoint: endpoint.to_string(),
                reason: format!("the answer to {path} is larger than {max_answer} bytes"),
            });
        }
        if !answer.status.is_success() {
            return Err(EtcdError::Refused {
                endpoint: endpoint.to_string(),
                call: path.to_string(),
                message: error_message(&answer.body, answer.status),
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| EtcdError::BadAnswer {
            endpoint: endpoint.to_string(),
            reason: format!("{path}: {e}"),
        })
    }
}

impl EtcdClient {
    /// A TLS connection to `endpoint`, or why there is none.
    async fn connect(
        &self,
        endpoint: &ClientUrl,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
            .await
            .map_err(|e| format!("dial tcp {}: {e}", endpoint.authority()))?;
        let name = ServerName::try_from(endpoint.host.clone())
            .map_err(|e| format!("invalid server name: {e}"))?;
        TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("tls: {e}"))
    }

    /// `POST path` with `body` as JSON to the first endpoint that accepts a connection, the
    /// answer handed to `sink` as it arrives (a server-streaming call such as
    /// `/v3/maintenance/snapshot`, whose answer is one JSON object per message). The whole
    /// exchange is bounded by `timeout`, not the client's per-call timeout.
    pub async fn stream<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        timeout: Duration,
        sink: &mut (dyn FnMut(&[u8]) -> Result<(), String> + Send),
    ) -> Result<(), EtcdError> {
        let json = serde_json::to_vec(body).expect("etcd requests serialize");
        let mut unreachable = Vec::new();
        for endpoint in &self.endpoints {
            let tls = match tokio::time::timeout(self.timeout, self.connect(endpoint)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(reason)) => {
                    unreachable.push((endpoint.to_string(), reason));
                    continue;
                }
                Err(_) => {
                    unreachable.push((
                        endpoint.to_string(),
                        format!("no connection within {:?}", self.timeout),
                    ));
                    continue;
                }
            };
            let exchange =
                client::send_streaming(tls, post(endpoint, path, &json), MAX_ANSWER, sink);
            let answer = match tokio::time::timeout(timeout, exchange).await {
                Err(_) => {
                    return Err(EtcdError::BadAnswer {
                        endpoint: endpoint.to_string(),
                        reason: format!("{path} did not finish within {timeout:?}"),
                    })
                }
                Ok(Err(e)) => {
                    return Err(EtcdError::BadAnswer {
                        endpoint: endpoint.to_string(),
                        reason: format!("{path}: {e}"),
                    })
                }
                Ok(Ok(answer)) => answer,
            };
            if !answer.status.is_success() {
                return Err(EtcdError::Refused {
                    endpoint: endpoint.to_string(),
                    call: path.to_string(),
                    message: error_message(&answer.body, answer.status),
                });
            }
            return Ok(());
        }
        Err(EtcdError::Unreachable { tried: unreachable })
    }
}

fn post(endpoint: &ClientUrl, path: &str, json: &[u8]) -> Request<Full<Bytes>> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, endpoint.authority())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONNECTION, "close")
        .body(Full::new(Bytes::copy_from_slice(json)))
        .expect("a valid request")
}

/// What a learner answers to calls only voting members serve (`rpctypes.ErrGRPCNotSupportedForLearner`).
const LEARNER_REFUSAL: &str = "rpc not supported for learner";

/// etcd's gateway error (`{"error": …}` on 3.4, `{"message": …}` on 3.5+), else the status.
fn error_message(body: &[u8], status: http::StatusCode) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    parsed
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("error")))
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
        .map(|m| m.chars().take(500).collect())
        .unwrap_or_else(|| format!("HTTP {status}"))
}

/// The files may be the configuration's (`etcd.external`): links are followed, as the API server
/// follows them.
fn read_pem(path: &Path) -> Result<Vec<u8>, EtcdError> {
    crate::host::read_bounded(path, MAX_PEM, crate::host::Links::Follow).map_err(|e| {
        EtcdError::Credentials {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}

/// An etcd client identity in memory: the CA to trust, the client certificate and its key (PEM),
/// each with the name errors show (its path, or where it came from).
pub struct Identity<'a> {
    pub ca: (&'a Path, &'a [u8]),
    pub cert: (&'a Path, &'a [u8]),
    pub key: (&'a Path, &'a [u8]),
}

/// rustls with the etcd CA as the only root and the client pair.
fn tls_config(identity: &Identity<'_>) -> Result<Arc<rustls::ClientConfig>, EtcdError> {
    let credentials = |path: &Path, reason: String| EtcdError::Credentials {
        path: path.to_path_buf(),
        reason,
    };
    let (ca_path, ca) = identity.ca;
    let (cert_path, cert) = identity.cert;
    let (key_path, key) = identity.key;
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca) {
        let der = der.map_err(|e| credentials(ca_path, e.to_string()))?;
        roots
            .add(der)
            .map_err(|e| credentials(ca_path, e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(credentials(ca_path, "no certificate in it".into()));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<_, _>>()
        .map_err(|e| credentials(cert_path, e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| credentials(key_path, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| credentials(cert_path, e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)
        .map_err(|e| credentials(key_path, e.to_string()))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_urls_are_https_host_port() {
        let url = ClientUrl::parse("https://10.0.0.1:2379").unwrap();
        assert_eq!(url.to_string(), "https://10.0.0.1:2379");
        let v6 = ClientUrl::parse("https://[fd00::1]:2379/").unwrap();
        assert_eq!(v6.authority(), "[fd00::1]:2379");
        for bad in [
            "http://10.0.0.1:2379",
            "https://10.0.0.1",
            "https://:2379",
            "https://a/b:2379",
            "https://10.0.0.1:99999",
        ] {
            assert!(ClientUrl::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn gateway_errors_read_both_formats() {
        let status = http::StatusCode::BAD_REQUEST;
        assert_eq!(
            error_message(
                br#"{"error":"etcdserver: member not found","code":5}"#,
                status
            ),
            "etcdserver: member not found"
        );
        assert_eq!(
            error_message(
                br#"{"code":9,"message":"etcdserver: can only promote a learner member which is in sync with leader"}"#,
                status
            ),
            "etcdserver: can only promote a learner member which is in sync with leader"
        );
        assert_eq!(error_message(b"<html>", status), "HTTP 400 Bad Request");
    }
}
