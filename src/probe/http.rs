//! `httpGet` probes as the kubelet's prober runs them (`pkg/probe/http`), on the crate's one
//! HTTP client ([`crate::http::client`]): one connection per request, TLS not verified
//! (`InsecureSkipVerify`), `User-Agent: kube-probe/<major>.<minor>`, `Accept: */*`, the probe's
//! `httpHeaders` replacing defaults of the same name, at most 10 KiB of the body read, redirects
//! to the same host followed (10 requests at most), a redirect to another host not followed.
//! Also polls health endpoints for `boot init`. Touches only the network.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST, LOCATION};
use http::Request;
use http_body_util::Empty;
use rustls::pki_types::ServerName;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::http_location::{resolve, Target};
use super::insecure_tls::client_config;
use super::spec::Scheme;
use super::tcp::{dial, os_error_text};
use crate::http::client;
use crate::version::Version;

/// The kubelet reads at most 10 KiB of a probe's response body (`maxRespBodyLength`).
pub const MAX_BODY: usize = 10 * 1024;
/// The kubelet's redirect checker stops after 10 requests (`len(via) >= 10`).
pub const MAX_REQUESTS: usize = 10;

/// `kube-probe/<major>.<minor>`, the kubelet's probe `User-Agent` for its own version
/// (`pkg/probe/http/request.go`).
pub fn user_agent(kubernetes: &Version) -> String {
    format!("kube-probe/{}.{}", kubernetes.major, kubernetes.minor)
}

/// One `httpGet` request as the manifest describes it.
#[derive(Debug, Clone, Copy)]
pub struct HttpGet<'a> {
    pub scheme: Scheme,
    pub host: &'a str,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    pub user_agent: &'a str,
}

/// What the server finally answered (after the redirects that were followed).
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

/// GETs the probe's URL, following same-host redirects; everything (every connection, TLS
/// handshake, request and body) is bounded by `timeout` together, as `http.Client.Timeout`.
pub async fn get(probe: &HttpGet<'_>, timeout: Duration) -> Result<HttpResponse, HttpError> {
    let deadline = Instant::now() + timeout;
    let mut target = Target {
        scheme: probe.scheme,
        host: probe
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .into(),
        port: probe.port,
        path: probe.path.into(),
    };
    let first_host = target.host.clone();
    // A `Host` header names the virtual host; Go keeps it across a redirect only when the
    // `Location` is relative (net/http `Client.do`).
    let mut host_header = header(probe.headers, "host").map(str::to_string);
    let mut sent = 0;
    loop {
        let url = target.url();
        let fail = |cause: String| HttpError {
            url: url.clone(),
            cause,
        };
        let request = build_request(&target, probe, host_header.as_deref()).map_err(fail)?;
        let exchange = exchange(&target, request);
        let response =
            match tokio::time::timeout_at(deadline, exchange).await {
                Ok(result) => result.map_err(fail)?,
                // Go's wording when http.Client.Timeout expires.
                Err(_) => return Err(fail(
                    "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                        .into(),
                )),
            };
        sent += 1;
        let location = response
            .headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty());
        let (next, relative) = match location {
            Some(location) if follows_redirect(response.status.as_u16()) => {
                resolve(&target, location).map_err(|e| {
                    fail(format!("failed to parse Location header {location:?}: {e}"))
                })?
            }
            _ => return Ok(finished(response)),
        };
        // The kubelet's redirect checker: another host ends the chain with this response.
        if next.host != first_host {
            return Ok(finished(response));
        }
        if sent >= MAX_REQUESTS {
            return Err(HttpError {
                url: next.url(),
                cause: format!("stopped after {MAX_REQUESTS} redirects"),
            });
        }
        if !relative {
            host_header = None;
        }
        target = next;
    }
}

fn finished(response: client::BoundedResponse) -> HttpResponse {
    HttpResponse {
        status: response.status.as_u16(),
        body: response.body.to_vec(),
    }
}

/// The statuses Go's client follows when they carry a `Location`.
fn follows_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The request as `newProbeRequest` builds it: the manifest's headers, then `User-Agent` and
/// `Accept: */*` unless given (an empty `Accept` removes it), `Host`, and `Connection: close`
/// (the prober's transport disables keep-alives).
fn build_request(
    target: &Target,
    probe: &HttpGet<'_>,
    host_header: Option<&str>,
) -> Result<Request<Empty<Bytes>>, String> {
    let mut request = Request::get(target.path.as_str())
        .body(Empty::new())
        .map_err(|e| format!("invalid request path {:?}: {e}", target.path))?;
    let headers = request.headers_mut();
    for (name, value) in probe.headers {
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("net/http: invalid header field name {name:?}"))?;
        let header_value = HeaderValue::from_str(value)
            .map_err(|_| format!("net/http: invalid header field value for {name:?}"))?;
        if header_name == HOST || header_name == http::header::CONNECTION {
            continue;
        }
        if header_name == http::header::ACCEPT && value.is_empty() {
            continue;
        }
        // An empty User-Agent is sent as none, as Go does.
        if header_name == http::header::USER_AGENT && value.is_empty() {
            continue;
        }
        headers.append(header_name, header_value);
    }
    if header(probe.headers, "user-agent").is_none() {
        let value = HeaderValue::from_str(probe.user_agent)
            .map_err(|_| format!("invalid User-Agent {:?}", probe.user_agent))?;
        headers.insert(http::header::USER_AGENT, value);
    }
    if header(probe.headers, "accept").is_none() {
        headers.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    }
    let host = host_header
        .map(str::to_string)
        .unwrap_or_else(|| host_port(&target.host, target.port));
    let host = HeaderValue::from_str(&host)
        .map_err(|_| format!("net/http: invalid Host header {host:?}"))?;
    headers.insert(HOST, host);
    headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    Ok(request)
}

/// One request on a new connection.
async fn exchange(
    target: &Target,
    request: Request<Empty<Bytes>>,
) -> Result<client::BoundedResponse, String> {
    let tcp = dial(&target.host, target.port).await?;
    let answer = match target.scheme {
        Scheme::Http => client::send(tcp, request, MAX_BODY).await,
        Scheme::Https => {
            let name = ServerName::try_from(target.host.clone())
                .map_err(|e| format!("tls: invalid server name {:?}: {e}", target.host))?;
            let tls = TlsConnector::from(client_config())
                .connect(name, tcp)
                .await
                .map_err(|e| tls_error_text(&e))?;
            client::send(tls, request, MAX_BODY).await
        }
    };
    answer.map_err(|e| e.to_string())
}

fn tls_error_text(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => format!("tls: {inner}"),
        None => format!("tls: {}", os_error_text(e)),
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
