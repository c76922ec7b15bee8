//! A minimal HTTP/1.1 server (keep-alive, Content-Length bodies) over plain TCP or TLS.
//! Each connection remembers the identity of its verified client certificate. The `hang`
//! fault is applied here so every component and endpoint hangs alike.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::faults::FaultSource;
use crate::tls::Identity;

/// Largest request body accepted (the real apiserver's limit is 3 MiB per object).
const MAX_BODY: usize = 3 << 20;
/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 << 10;
/// How long an idle keep-alive connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The verified client certificate's user, if one was presented.
    pub identity: Option<Identity>,
}

impl Request {
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }

    /// True if the query has `name` as a key (`?verbose`, `?verbose=true`).
    pub fn has_param(&self, name: &str) -> bool {
        self.query()
            .split('&')
            .any(|kv| kv.split('=').next() == Some(name))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into().into_bytes(),
        }
    }

    pub fn json(status: u16, body: &Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
        }
    }
}

pub type BoxFuture = Pin<Box<dyn Future<Output = Response> + Send>>;
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture + Send + Sync>;

/// Accepts connections forever, each served on its own task; never returns an error today,
/// the `Result` keeps the components' run functions uniform.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: Handler,
    faults: Arc<FaultSource>,
) -> Result<(), String> {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => {
                // Go enables TCP_NODELAY on every connection; without it the head and body
                // writes below meet the client's delayed ACK and each answer waits ~40 ms.
                let _ = tcp.set_nodelay(true);
                tcp
            }
            // Out of file descriptors and the like: Go's http.Server logs, backs off, retries.
            Err(e) => {
                crate::log(&format!("accept: {e}; retrying"));
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (handler, faults, tls) = (handler.clone(), faults.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                None => serve_connection(tcp, None, handler, faults).await,
                Some(acceptor) => match acceptor.accept(tcp).await {
                    Ok(stream) => {
                        let peer = stream.get_ref().1.peer_certificates();
                        let identity = peer
                            .and_then(|certs| certs.first())
                            .and_then(crate::tls::identity);
                        serve_connection(stream, identity, handler, faults).await;
                    }
                    // Probes that only open the port end this way; not worth a log line.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
                    Err(e) => crate::log(&format!("TLS handshake error: {e}")),
                },
            }
        });
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    identity: Option<Identity>,
    handler: Handler,
    faults: Arc<FaultSource>,
) {
    let mut reader = BufReader::new(stream);
    loop {
        let request = match tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut reader)).await {
            Ok(Ok(Some(mut request))) => {
                request.identity = identity.clone();
                request
            }
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(message)) => {
                let _ = write_response(reader.get_mut(), &Response::text(400, message), true).await;
                return;
            }
        };
        // `hang` while running: hold the request unanswered until the word goes away.
        while faults.current().hang {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let response = handler(request).await;
        if write_response(reader.get_mut(), &response, close)
            .await
            .is_err()
            || close
        {
            let _ = reader.get_mut().shutdown().await;
            return;
        }
    }
}

/// Reads one request; `Ok(None)` on a clean end of stream between requests.
async fn read_request<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Option<Request>, String> {
    let Some(line) = read_line(reader).await? else {
        return Ok(None);
    };
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {line:?}"));
    };
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)
            .await?
            .ok_or("connection closed in headers")?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("malformed header {line:?}"))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request = Request {
        method: method.into(),
        target: target.into(),
        headers,
        body: Vec::new(),
        identity: None,
    };
    if request.header("transfer-encoding").is_some() {
        return Err("chunked request bodies are not supported by boot-standin".into());
    }
    let length: usize = match request.header("content-length") {
        Some(v) => v.parse().map_err(|_| format!("bad Content-Length {v:?}"))?,
        None => 0,
    };
    if length > MAX_BODY {
        return Err(format!("request body of {length} bytes is too large"));
    }
    request.body = vec![0; length];
    reader
        .read_exact(&mut request.body)
        .await
        .map_err(|e| format!("reading body: {e}"))?;
    Ok(Some(request))
}

async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> Result<Option<String>, String> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await
        .map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if !line.ends_with(b"\n") {
        return Err("request line or header too long or truncated".into());
    }
    let text = String::from_utf8(line).map_err(|_| "request header is not UTF-8".to_string())?;
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

async fn write_response<W: AsyncWrite + Unpin>(
    writer: &mut W,
    response: &Response,
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-cache, private\r\nX-Content-Type-Options: nosniff\r\n{}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        if close { "Connection: close\r\n" } else { "" },
    );
    writer.write_all(head.as_bytes()).await?;
    writer.write_all(&response.body).await?;
    writer.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        500 => "Internal Server Error",
        _ => "",
    }
}
