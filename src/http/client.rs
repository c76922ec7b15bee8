//! The client half: one HTTP/1.1 request on a connection the caller opened (TCP, TLS or a unix
//! socket), the response body read up to a bound and the rest left unread. Used by `httpGet`
//! probes, `boot init`'s health polling and the agent's status client. Timeouts are the caller's
//! (wrap the call). Touches only the connection it is given.

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

/// The largest response head accepted (hyper's read buffer; Go's `DefaultMaxHeaderBytes` is
/// 1 MB, health endpoints send a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;

/// A response whose body was read up to a bound.
#[derive(Debug, Clone)]
pub struct BoundedResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// At most the bound's bytes of the body.
    pub body: Bytes,
    /// The body was longer than the bound; the rest was not read.
    pub truncated: bool,
}

/// Why an exchange failed; displays hyper's reason, with Go's wording where a probe message
/// users compare with the kubelet's depends on it.
#[derive(Debug, thiserror::Error)]
#[error("{}", describe(.0))]
pub struct ExchangeError(#[source] hyper::Error);

fn describe(e: &hyper::Error) -> String {
    let mut text = if e.is_parse() {
        format!("malformed HTTP response: {e}")
    } else if e.is_incomplete_message() {
        // The peer closed the connection without (completely) answering: Go says `EOF`.
        "EOF".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Sends `request` on `io` and reads the response, keeping at most `max_body` bytes of its body.
/// The request should carry `Host` (hyper's connection-level client does not add it) and its URI
/// in origin form (`/path?query`). The body is any hyper body (`Empty` for a GET, `Full` for a
/// small JSON request). The connection is closed when this returns.
pub async fn send<IO, B>(
    io: IO,
    request: Request<B>,
    max_body: usize,
) -> Result<BoundedResponse, ExchangeError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        // Go's net/http writes canonical header names; some servers care.
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD)
        .handshake(TokioIo::new(io))
        .await
        .map_err(ExchangeError)?;
    let exchange = async {
        let response = sender.send_request(request).await?;
        read_bounded(response, max_body).await
    };
    // The connection future moves the bytes; it is polled here rather than spawned so that
    // nothing outlives this call.
    tokio::pin!(connection, exchange);
    tokio::select! {
        biased;
        result = &mut exchange => result.map_err(ExchangeError),
        ended = &mut connection => {
            ended.map_err(ExchangeError)?;
            // The peer finished and closed: what it sent is buffered for the exchange.
            exchange.await.map_err(ExchangeError)
        }
    }
}

/// Why a streamed exchange stopped: the exchange itself, or the sink refused a chunk.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E: std::fmt::Display + std::fmt::Debug> {
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error("{0}")]
    Sink(E),
}

/// [`send`] for answers too large to hold: the body of a successful (2xx) response goes to
/// `sink` chunk by chunk as it arrives, and the returned response's body is empty; any other
/// response is read up to `max_error_body` as [`send`] reads it. A sink error ends the exchange.
pub async fn send_streaming<IO, B, E>(
    io: IO,
    request: Request<B>,
    max_error_body: usize,
    sink: &mut (dyn FnMut(&[u8]) -> Result<(), E> + Send),
) -> Result<BoundedResponse, StreamError<E>>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: std::fmt::Display + std::fmt::Debug,
{
    let (mut sender, connection) = hyper::client::conn::http1::Builder::new()
        .title_case_headers(true)
        .max_buf_size(MAX_HEAD)
        .handshake(TokioIo::new(io))
        .await
        .map_err(ExchangeError)?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| StreamError::Exchange(ExchangeError(e)))?;
        if !response.status().is_success() {
            return read_bounded(response, max_error_body)
                .await
                .map_err(|e| StreamError::Exchange(ExchangeError(e)));
        }
        let (parts, mut body) = response.into_parts();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| StreamError::Exchange(ExchangeError(e)))?;
            if let Ok(chunk) = frame.into_data() {
                sink(&chunk).map_err(StreamError::Sink)?;
            }
        }
        Ok(BoundedResponse {
            status: parts.status,
            headers: parts.headers,
            body: Bytes::new(),
            truncated: false,
        })
    };
    tokio::pin!(connection, exchange);
    tokio::select! {
        biased;
        result = &mut exchange => result,
        ended = &mut connection => {
            ended.map_err(ExchangeError)?;
            exchange.await
        }
    }
}

async fn read_bounded(
    response: hyper::Response<hyper::body::Incoming>,
    max_body: usize,
) -> Result<BoundedResponse, hyper::Error> {
    let (parts, mut body) = response.into_parts();
    let mut data = BytesMut::new();
    let mut truncated = false;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame?.into_data() else {
            continue; // trailers
        };
        let room = max_body - data.len();
        if chunk.len() > room {
            data.extend_from_slice(&chunk[..room]);
            truncated = true;
            break;
        }
        data.extend_from_slice(&chunk);
    }
    Ok(BoundedResponse {
        status: parts.status,
        headers: parts.headers,
        body: data.freeze(),
        truncated,
    })
}
