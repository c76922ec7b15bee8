//! The agent's local endpoints, on [`crate::http::server`]: over the unix socket `GET /status` →
//! [`AgentStatus`] JSON and `GET /healthz` → `ok`; over TCP on 127.0.0.1:10248 only `/healthz`,
//! like the kubelet. `/healthz` answers `ok` only when the supervisor loop answers, so a stuck
//! agent is unhealthy. The socket is created 0600 (its directory 0700): the status names every
//! process and file the agent runs.
//!
//! Touches: `<root>/run/boot/agent.sock` and its directory.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};

use super::status::AgentStatus;
use super::supervisor::Event;
use crate::http::server::{respond, serve, Limits};

/// What the endpoints give local clients: a handful of `boot status` and `boot init` polls at
/// once is normal; a client that holds a connection longer than the deadline is cut off.
pub const LIMITS: Limits = Limits {
    max_connections: 32,
    request_deadline: Duration::from_secs(10),
};
const SUPERVISOR_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
const NO_ANSWER: &str = "the agent's supervisor loop does not answer";

pub async fn serve_unix(listener: UnixListener, events: mpsc::UnboundedSender<Event>) {
    serve_endpoints(listener, events, true, "the status socket").await
}

pub async fn serve_tcp(listener: TcpListener, events: mpsc::UnboundedSender<Event>) {
    serve_endpoints(listener, events, false, "/healthz").await
}

async fn serve_endpoints<L: crate::http::server::Listener>(
    listener: L,
    events: mpsc::UnboundedSender<Event>,
    full: bool,
    what: &'static str,
) {
    let handler = move |request: Request<Incoming>| answer(request, events.clone(), full);
    serve(listener, LIMITS, handler, |e| {
        eprintln!("[agent] {what}: cannot accept a connection: {e}; retrying")
    })
    .await
}

async fn answer(
    request: Request<Incoming>,
    events: mpsc::UnboundedSender<Event>,
    full: bool,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return respond(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "only GET is served",
        );
    }
    match (request.uri().path(), full) {
        ("/healthz", _) => match ask(&events).await {
            Some(_) => respond(StatusCode::OK, "text/plain", "ok"),
            None => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", NO_ANSWER),
        },
        ("/status", true) => match ask(&events).await {
            Some(status) => match serde_json::to_vec(&status) {
                Ok(json) => respond(StatusCode::OK, "application/json", json),
                Err(e) => respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    e.to_string(),
                ),
            },
            None => respond(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", NO_ANSWER),
        },
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found"),
    }
}

async fn ask(events: &mpsc::UnboundedSender<Event>) -> Option<AgentStatus> {
    let (tx, rx) = oneshot::channel();
    events.send(Event::Status(tx)).ok()?;
    tokio::time::timeout(SUPERVISOR_ANSWER_TIMEOUT, rx)
        .await
        .ok()?
        .ok()
}

/// Why the status socket could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("another agent answers on it")]
    InUse,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Binds the status socket with mode 0600 (its directory created 0700), replacing a stale socket
/// but refusing when an agent answers on it.
pub fn bind_status_socket(socket: &Path) -> Result<UnixListener, BindError> {
    if let Some(dir) = socket.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    if socket.symlink_metadata().is_ok() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(BindError::InUse);
        }
        std::fs::remove_file(socket)?;
    }
    bind_private(socket).map_err(BindError::Io)
}

/// A listening unix socket whose file is created 0600: Linux gives the file the socket inode's
/// mode (less the umask) at `bind`, so the mode is set on the descriptor before, and the path
/// never exists with wider permissions (a `chmod` after `bind` leaves a window; changing the
/// process-wide umask races with other threads).
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    use nix::sys::socket::UnixAddr;
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType};
    use nix::sys::stat::{fchmod, Mode};

    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    fchmod(&fd, Mode::S_IRUSR | Mode::S_IWUSR)?;
    bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    listen(&fd, Backlog::new(128)?)?;
    UnixListener::from_std(std::os::unix::net::UnixListener::from(fd))
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
