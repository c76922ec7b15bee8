//! A minimal HTTP/1.1 GET client over tokio (plain or TLS without verification, as the kubelet's
//! prober uses `InsecureSkipVerify`). Used by `httpGet` probes and by `boot init` to poll health
//! endpoints. Touches only the network.

use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::insecure_tls::client_config;
use super::spec::Scheme;
use super::tcp::{dial, os_error_text};

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

/// GETs `path` from `host:port`; the whole exchange (connect, TLS, request, response) is
/// bounded by `timeout`. `headers` replace the defaults of the same name (a `Host` header
/// replaces the host, an empty `Accept` removes it), as the kubelet's `newProbeRequest` does.
/// Redirects are not followed.
pub async fn get(
    scheme: Scheme,
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    let url = url(scheme, host, port, path);
    let exchange = async {
        let request = request_bytes(host, port, path, headers)?;
        let tcp = dial(host, port).await?;
        match scheme {
            Scheme::Http => exchange(tcp, &request).await,
            Scheme::Https => {
                let tls = tls_connect(host, tcp).await?;
                exchange(tls, &request).await
            }
        }
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(cause)) => Err(HttpError { url, cause }),
        // Go's wording when http.Client.Timeout expires.
        Err(_) => Err(HttpError {
            url,
            cause: "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                .into(),
        }),
    }
}

/// The request head: request line, defaults, the caller's headers, `Connection: close`.
fn request_bytes(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> Result<Vec<u8>, String> {
    for (name, value) in headers {
        let bad_name = name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        if bad_name {
            return Err(format!("net/http: invalid header field name {name:?}"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("net/http: invalid header field value for {name:?}"));
        }
    }
    if path
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("invalid request path {path:?}"));
    }
    let given = |n: &'static str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    let host_header = given("host")
        .map(str::to_string)
        .unwrap_or_else(|| host_port(host, port));
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {host_header}\r\n");
    if given("user-agent").is_none() {
        head.push_str(&format!("User-Agent: {USER_AGENT}\r\n"));
    }
    if given("accept").is_none() {
        head.push_str("Accept: */*\r\n");
    }
    for (name, value) in headers {
        let skip = name.eq_ignore_ascii_case("host")
            || name.eq_ignore_ascii_case("connection")
            || (name.eq_ignore_ascii_case("accept") && value.is_empty());
        if !skip {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    Ok(head.into_bytes())
}

async fn tls_connect(host: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_string())
        .map_err(|e| format!("tls: invalid server name {bare:?}: {e}"))?;
    TlsConnector::from(client_config())
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error_text(&e))
}

fn tls_error_text(e: &std::io::Error) -> String {
    match e.get_ref() {
        Some(inner) => format!("tls: {inner}"),
        None => format!("tls: {}", os_error_text(e)),
    }
}

/// Longest response head accepted (Go's `http.DefaultMaxHeaderBytes` is 1 MB; health endpoints
/// send a few hundred bytes).
const MAX_HEAD: u64 = 64 * 1024;

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> Result<HttpResponse, String> {
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("write: {}", os_error_text(&e)))?;
    stream
        .flush()
        .await
        .map_err(|e| format!("write: {}", os_error_text(&e)))?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = loop {
        let (status, headers) = read_head(&mut reader).await?;
        // Interim 1xx responses precede the real one (101 is not expected on a GET).
        if !(100..200).contains(&status) {
            break (status, headers);
        }
    };
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    {
        read_chunked(&mut reader).await?
    } else if let Some(length) = header("content-length") {
        let length: u64 = length
            .trim()
            .parse()
            .map_err(|_| format!("bad Content-Length {length:?}"))?;
        read_capped(&mut reader, length.min(MAX_BODY as u64)).await?
    } else {
        read_capped(&mut reader, MAX_BODY as u64).await?
    };
    Ok(HttpResponse { status, body })
}

/// Reads a status line and header lines up to the empty line.
async fn read_head<R: AsyncBufRead + Unpin>(
    reader: &mut R,
) -> Result<(u16, Vec<(String, String)>), String> {
    let mut budget = MAX_HEAD;
    let status_line = read_line(reader, &mut budget).await?;
    if status_line.is_empty() {
        return Err("EOF".into());
    }
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => code.parse::<u16>().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("net/http: malformed HTTP response {status_line:?}"))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader, &mut budget).await?;
        if line.is_empty() {
            return Ok((status, headers));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
}

/// One CRLF- (or LF-) terminated line without its terminator, charged against `budget`.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    budget: &mut u64,
) -> Result<String, String> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(*budget)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| format!("read: {}", os_error_text(&e)))?;
    *budget -= n as u64;
    if !line.ends_with(b"\n") {
        if *budget == 0 {
            return Err("net/http: response head too long".into());
        }
        if !line.is_empty() {
            return Err("unexpected EOF".into());
        }
    }
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Up to `limit` bytes, or fewer if the peer closes first.
async fn read_capped<R: AsyncRead + Unpin>(reader: &mut R, limit: u64) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut body)
        .await
        .map_err(|e| format!("read body: {}", os_error_text(&e)))?;
    Ok(body)
}

/// Decodes `Transfer-Encoding: chunked` until the last chunk or [`MAX_BODY`] bytes.
async fn read_chunked<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD;
    loop {
        let line = read_line(reader, &mut budget).await?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = u64::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        let room = (MAX_BODY - body.len()) as u64;
        body.extend(read_capped(reader, size.min(room)).await?);
        if body.len() >= MAX_BODY {
            return Ok(body);
        }
        read_line(reader, &mut budget).await?; // the CRLF after the chunk data
    }
}

#[cfg(test)]
#[path = "http_tests.rs"]
mod tests;
