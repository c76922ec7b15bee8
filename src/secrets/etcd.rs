//! Reading raw keys from etcd, as the API server stores them, to see which encryption key each
//! object was written with. The API server's own etcd client identity is used (`--etcd-cafile`,
//! `--etcd-certfile`, `--etcd-keyfile`, `--etcd-servers` of its manifest), and etcd's JSON
//! gateway (`POST /v3/kv/range`, served on the client port by etcd 3.4 and later) over the one
//! HTTP client, so boot needs no gRPC stack and no `etcdctl` for this.
//!
//! Reads only; the files named by the manifest are read bounded and never followed as symlinks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

/// Keys per range request: bounds one response to a few hundred values.
const PAGE: u32 = 200;
/// The largest range response read: 200 values of at most etcd's 1.5 MiB request limit.
const MAX_RESPONSE: usize = 320 * 1024 * 1024;
/// How long one range request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Certificates and keys are a few KiB.
const MAX_PEM: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("etcd at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("etcd at {endpoint} answered {status}: {body}")]
    Refused {
        endpoint: String,
        status: u16,
        body: String,
    },
}

/// One etcd client endpoint and the credentials to read from it.
#[derive(Debug, Clone)]
pub struct EtcdAccess {
    /// `https://127.0.0.1:2379`, as `--etcd-servers` names it.
    pub endpoint: String,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(serde::Deserialize)]
struct RangeResponse {
    #[serde(default)]
    kvs: Vec<KeyValue>,
    #[serde(default)]
    more: bool,
}

#[derive(serde::Deserialize)]
struct KeyValue {
    key: String,
    #[serde(default)]
    value: String,
}

impl EtcdAccess {
    /// Calls `each(key, value)` for every key under `prefix`, in key order; returns how many.
    pub async fn scan(
        &self,
        prefix: &str,
        each: &mut (dyn FnMut(&[u8], &[u8]) + Send),
    ) -> Result<u64, EtcdError> {
        let tls = self.tls()?;
        let (host, port) = host_port(&self.endpoint)
            .ok_or_else(|| self.unreachable("not an https://HOST:PORT URL".into()))?;
        let range_end = prefix_end(prefix.as_bytes());
        let mut start = prefix.as_bytes().to_vec();
        let mut seen = 0u64;
        loop {
            let body = serde_json::json!({
                "key": BASE64.encode(&start),
                "range_end": BASE64.encode(&range_end),
                "limit": PAGE,
            });
            let page: RangeResponse = self.post(&tls, &host, port, body.to_string()).await?;
            for kv in &page.kvs {
                let key = BASE64
                    .decode(&kv.key)
                    .map_err(|e| self.unreachable(e.to_string()))?;
                let value = BASE64
                    .decode(&kv.value)
                    .map_err(|e| self.unreachable(e.to_string()))?;
                each(&key, &value);
                seen += 1;
            }
            match page.kvs.last() {
                Some(last) if page.more => {
                    start = BASE64.decode(&last.key).unwrap_or_default();
                    start.push(0);
                }
                _ => return Ok(seen),
            }
        }
    }

    async fn post<T: serde::de::DeserializeOwned>(
        &self,
        tls: &TlsConnector,
        host: &str,
        port: u16,
        body: String,
    ) -> Result<T, EtcdError> {
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| self.unreachable(format!("invalid host: {e}")))?;
        let request = Request::post("/v3/kv/range")
            .header(http::header::HOST, format!("{host}:{port}"))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| self.unreachable(e.to_string()))?;
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect((host, port))
                .await
                .map_err(|e| self.unreachable(e.to_string()))?;
            let stream = tls
                .connect(name, tcp)
                .await
                .map_err(|e| self.unreachable(format!("TLS: {e}")))?;
            crate::http::client::send(stream, request, MAX_RESPONSE)
                .await
                .map_err(|e| self.unreachable(e.to_string()))
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| self.unreachable(format!("no answer within {REQUEST_TIMEOUT:?}")))??;
        if !response.status.is_success() || response.truncated {
            return Err(EtcdError::Refused {
                endpoint: self.endpoint.clone(),
                status: response.status.as_u16(),
                body: String::from_utf8_lossy(&response.body[..response.body.len().min(300)])
                    .into_owned(),
            });
        }
        serde_json::from_slice(&response.body)
            .map_err(|e| self.unreachable(format!("unexpected answer: {e}")))
    }

    fn tls(&self) -> Result<TlsConnector, EtcdError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let bad = |path: &Path, reason: String| EtcdError::File {
            path: path.to_path_buf(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&read_pem(&self.ca)?) {
            let ca = ca.map_err(|e| bad(&self.ca, e.to_string()))?;
            roots.add(ca).map_err(|e| bad(&self.ca, e.to_string()))?;
        }
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&read_pem(&self.cert)?)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&self.cert, e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(&read_pem(&self.key)?)
            .map_err(|e| bad(&self.key, e.to_string()))?;
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(&self.cert, e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| bad(&self.cert, e.to_string()))?;
        Ok(TlsConnector::from(Arc::new(config)))
    }

    fn unreachable(&self, reason: String) -> EtcdError {
        EtcdError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason,
        }
    }
}

/// The end of etcd's range for `prefix`: the prefix with its last byte incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // every key
}

/// `https://HOST:PORT` → (HOST, PORT); IPv6 in brackets.
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("https://")?.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains('/') {
        return None;
    }
    Some((host.to_string(), port.parse().ok()?))
}

fn read_pem(path: &Path) -> Result<Vec<u8>, EtcdError> {
    super::read_bounded(path, MAX_PEM).map_err(|reason| EtcdError::File {
        path: path.to_path_buf(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_endpoints() {
        assert_eq!(prefix_end(b"/registry/secrets/"), b"/registry/secrets0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(
            host_port("https://127.0.0.1:2379"),
            Some(("127.0.0.1".into(), 2379))
        );
        assert_eq!(host_port("https://[::1]:2379/"), Some(("::1".into(), 2379)));
        assert_eq!(host_port("http://127.0.0.1:2379"), None);
        assert_eq!(host_port("https://127.0.0.1"), None);
        assert_eq!(host_port("https://:2379"), None);
    }
}
