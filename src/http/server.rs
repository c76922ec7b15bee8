//! The server half: an accept loop that survives misbehaving local clients, serving HTTP/1.1
//! with hyper, one request per connection. Used by the agent's status endpoints (unix socket and
//! 127.0.0.1:10248); meant for the :10250 API too. Touches only the listener it is given.
//!
//! What it guards against, and how:
//! - accept errors (`EMFILE` when the process is out of descriptors, `ECONNABORTED`, …) never
//!   end the loop: it backs off 5 ms doubling to 1 s, as Go's `http.Server.Serve` does, and
//!   carries on;
//! - at most [`Limits::max_connections`] connections are served at once; further clients wait in
//!   the kernel's backlog (a semaphore taken before `accept`, as Go's `netutil.LimitListener`);
//! - every connection, from its first byte to the last byte of the answer, is bounded by
//!   [`Limits::request_deadline`], so a client that trickles its request (slowloris) or never
//!   reads the answer holds a slot for no longer than that.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;

/// The largest request head read (hyper's minimum read buffer); the endpoints take no body.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Go's `http.Server.Serve`: the first back-off after an accept error, doubled up to the max.
const ACCEPT_BACKOFF_INITIAL: Duration = Duration::from_millis(5);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How much a server gives its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// The whole exchange on one connection: reading the request, answering, writing.
    pub request_deadline: Duration,
}

/// Something connections are accepted from.
pub trait Listener: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&self) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

impl Listener for TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<Self::Io> {
        TcpListener::accept(self).await.map(|(stream, _)| stream)
    }
}

impl Listener for UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<Self::Io> {
        UnixListener::accept(self).await.map(|(stream, _)| stream)
    }
}

/// Serves `handler` on every connection accepted from `listener`, forever (abort the task to
/// stop). `on_accept_error` hears each accept error once per run of failures, for the log.
pub async fn serve<L, H, F>(
    listener: L,
    limits: Limits,
    handler: H,
    on_accept_error: impl Fn(&io::Error),
) where
    L: Listener,
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut backoff: Option<Duration> = None;
    loop {
        // The semaphore is never closed, so acquiring cannot fail.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let io = match listener.accept().await {
            Ok(io) => {
                backoff = None;
                io
            }
            Err(e) => {
                if backoff.is_none() {
                    on_accept_error(&e);
                }
                let delay = next_backoff(backoff);
                backoff = Some(delay);
                drop(slot);
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // An expired deadline drops the connection; the client sees it closed.
            let _ =
                tokio::time::timeout(limits.request_deadline, serve_connection(io, handler)).await;
        });
    }
}

/// 5 ms, 10 ms, 20 ms, … 1 s, 1 s.
fn next_backoff(previous: Option<Duration>) -> Duration {
    match previous {
        None => ACCEPT_BACKOFF_INITIAL,
        Some(d) => (d * 2).min(ACCEPT_BACKOFF_MAX),
    }
}

async fn serve_connection<IO, H, F>(io: IO, handler: H)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let answer = handler(request);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(io), service)
        .await;
}

/// A complete answer with a body and its content type.
pub fn respond(
    status: http::StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
