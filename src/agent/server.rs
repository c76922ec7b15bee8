//! The agent's local endpoints: HTTP/1.x over the unix socket (`GET /status` → [`AgentStatus`]
//! JSON, `GET /healthz` → `ok`) and `/healthz` over TCP on 127.0.0.1:10248 like the kubelet.
//! Hand-rolled: one request per connection, nothing else to serve. `/healthz` answers `ok` only
//! when the supervisor loop answers, so a stuck agent is unhealthy.
//!
//! Touches: `<root>/run/boot/agent.sock`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{mpsc, oneshot};

use super::status::AgentStatus;
use super::supervisor::Event;

/// Longest request head read; the endpoints take no body.
const MAX_REQUEST: usize = 8 * 1024;
const SUPERVISOR_ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn serve_unix(listener: UnixListener, events: mpsc::UnboundedSender<Event>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(handle(stream, events.clone(), true));
    }
}

pub async fn serve_tcp(listener: TcpListener, events: mpsc::UnboundedSender<Event>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(handle(stream, events.clone(), false));
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

async fn handle<S>(mut stream: S, events: mpsc::UnboundedSender<Event>, full: bool)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_REQUEST {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let (code, content_type, body) = match (path, full) {
        ("/healthz", _) => match ask(&events).await {
            Some(_) => ("200 OK", "text/plain", b"ok".to_vec()),
            None => (
                "500 Internal Server Error",
                "text/plain",
                b"the agent's supervisor loop does not answer".to_vec(),
            ),
        },
        ("/status", true) => match ask(&events).await {
            Some(status) => (
                "200 OK",
                "application/json",
                serde_json::to_vec(&status).unwrap_or_default(),
            ),
            None => (
                "500 Internal Server Error",
                "text/plain",
                b"the agent's supervisor loop does not answer".to_vec(),
            ),
        },
        _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
    };
    let header = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(header.as_bytes()).await;
    let _ = stream.write_all(&body).await;
    let _ = stream.shutdown().await;
}
