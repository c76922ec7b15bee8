//! The API server stand-in's etcd client: a `PUT` through etcd's v3 JSON gateway
//! (`POST /v3/kv/put`, served by etcd 3.4+ on the client port) over mTLS with the
//! `--etcd-cafile`/`--etcd-certfile`/`--etcd-keyfile` the manifest names. A successful put
//! proves the endpoint, the CA and the client certificate all work.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::flags::Flags;

/// How long one put may take before etcd counts as failed (the real apiserver's
/// `--etcd-healthcheck-timeout` default is 2s).
const PUT_TIMEOUT: Duration = Duration::from_secs(2);

pub struct EtcdClient {
    /// `host:port` to connect to.
    authority: String,
    host: String,
    tls: Option<Arc<ClientConfig>>,
}

impl EtcdClient {
    /// Uses the first URL of `--etcd-servers`, as the real apiserver's health check does.
    pub fn from_flags(flags: &Flags) -> Result<EtcdClient, String> {
        let servers = flags
            .path("etcd-servers")
            .ok_or("--etcd-servers must be specified")?;
        let first = servers.split(',').next().unwrap_or_default();
        let (scheme, authority) = first
            .split_once("://")
            .ok_or_else(|| format!("--etcd-servers: {first:?} is not a URL"))?;
        let authority = authority.trim_end_matches('/').to_string();
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => return Err(format!("--etcd-servers: {first:?} has no port")),
        };
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tls = match scheme {
            "http" => None,
            "https" => {
                let ca = flags
                    .path("etcd-cafile")
                    .ok_or("--etcd-servers uses https but --etcd-cafile is not set")?;
                Some(crate::tls::client_config(
                    ca,
                    flags.path("etcd-certfile"),
                    flags.path("etcd-keyfile"),
                )?)
            }
            other => {
                return Err(format!(
                    "--etcd-servers: unsupported scheme {other:?} in {first:?}"
                ))
            }
        };
        Ok(EtcdClient {
            authority,
            host,
            tls,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.authority
    }

    /// Writes `key` = `value`; the error says what failed (connect, TLS, HTTP status).
    pub async fn put(&self, key: &str, value: &str) -> Result<(), String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body =
            serde_json::json!({ "key": b64.encode(key), "value": b64.encode(value) }).to_string();
        let request = format!(
            "POST /v3/kv/put HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.authority,
            body.len()
        );
        let response = tokio::time::timeout(PUT_TIMEOUT, self.exchange(request.as_bytes()))
            .await
            .map_err(|_| {
                format!(
                    "no answer from etcd at {} within {PUT_TIMEOUT:?}",
                    self.authority
                )
            })??;
        let status_line = response.lines().next().unwrap_or_default();
        if status_line.split_whitespace().nth(1) == Some("200") {
            Ok(())
        } else {
            let body = response
                .split_once("\r\n\r\n")
                .map(|(_, b)| b)
                .unwrap_or_default();
            Err(format!(
                "etcd at {} answered {status_line:?}: {}",
                self.authority,
                body.trim()
            ))
        }
    }

    async fn exchange(&self, request: &[u8]) -> Result<String, String> {
        let tcp = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("dial tcp {}: {e}", self.authority))?;
        match &self.tls {
            None => round_trip(tcp, request).await,
            Some(config) => {
                let name = ServerName::try_from(self.host.clone())
                    .map_err(|e| format!("etcd host {:?}: {e}", self.host))?;
                let stream = TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with etcd at {}: {e}", self.authority))?;
                round_trip(stream, request).await
            }
        }
    }
}

/// Sends the request and reads until the server closes (the request asked it to).
async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<String, String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("writing to etcd: {e}"))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("writing to etcd: {e}"))?;
    let mut response = Vec::new();
    if let Err(e) = stream.read_to_end(&mut response).await {
        // Go servers may close without TLS close_notify; what arrived is still the answer.
        if response.is_empty() {
            return Err(format!("reading from etcd: {e}"));
        }
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}
