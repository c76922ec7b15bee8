//! A minimal HTTP/1.1 GET client over tokio (plain or TLS without verification, as the kubelet's
//! prober uses `InsecureSkipVerify`). Used by `httpGet` probes and by `boot init` to poll health
//! endpoints. Touches only the network.

use std::time::Duration;

use super::spec::Scheme;

/// The kubelet sends `User-Agent: kube-probe/<major>.<minor>` (`pkg/probe/http/request.go`).
pub const USER_AGENT: &str = "kube-probe/1.34";
/// The kubelet reads at most 10 KB of a probe's response body (`maxRespBodyLength`).
pub const MAX_BODY: usize = 10 * 1024;

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// At most [`MAX_BODY`] bytes of the body.
    pub body: Vec<u8>,
}

/// A failed request; displays like Go's `*url.Error`, e.g.
/// `Get "https://127.0.0.1:6443/livez": dial tcp 127.0.0.1:6443: connect: connection refused`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Get \"{url}\": {cause}")]
pub struct HttpError {
    pub url: String,
    pub cause: String,
}

/// `scheme://host:port/path`, with an IPv6 host in brackets.
pub fn url(scheme: Scheme, host: &str, port: u16, path: &str) -> String {
    format!("{}://{}{}", scheme.as_str(), host_port(host, port), path)
}

/// `host:port`, with an IPv6 host in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// GETs `path` from `host:port`; the whole exchange is bounded by `timeout`. `headers` are
/// sent after the defaults and replace them by name (a `Host` header replaces the host).
pub async fn get(
    scheme: Scheme,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    let _ = (scheme, host, port, path, headers, timeout);
    todo!()
}
