//! `grpc` probes: the standard health protocol `grpc.health.v1.Health/Check` over plaintext
//! HTTP/2 with hyper, the crate's one HTTP implementation (the kubelet never uses TLS for gRPC
//! probes); success is `SERVING`. Failure messages follow `pkg/probe/grpc`.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::time::Instant;

use super::grpc_wire::{
    code_name, percent_decode, request_frame, response_status, status_name, unframe, SERVING,
};
use super::http::host_port;
use super::run::ProbeResult;
use super::tcp::dial;

/// The largest response body read (gRPC's default maximum receive message size is 4 MB; a
/// health response is two bytes).
const MAX_RESPONSE: usize = 64 * 1024;

/// gRPC status code `Unimplemented`.
const UNIMPLEMENTED: u32 = 12;

/// Calls `Health/Check` for `service` (empty or `None`: the server as a whole) on `host:port`;
/// connecting and the call together are bounded by `timeout`. `user_agent` is the kubelet's
/// `kube-probe/<major>.<minor>` (its gRPC prober sets it with `grpc.WithUserAgent`).
pub async fn check(
    host: &str,
    port: u16,
    service: Option<&str>,
    user_agent: &str,
    timeout: Duration,
) -> ProbeResult {
    let addr = host_port(host, port);
    let deadline = Instant::now() + timeout;
    let connect = async {
        let tcp = dial(host, port).await?;
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())
    };
    let (sender, connection) = match tokio::time::timeout_at(deadline, connect).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            return ProbeResult::Failure(format!(
                "error: failed to connect service at {addr:?}: {e}"
            ))
        }
        Err(_) => {
            return ProbeResult::Failure(format!(
                "timeout: failed to connect service {addr:?} within {}: context deadline exceeded",
                go_duration(timeout)
            ))
        }
    };
    // The connection future drives the HTTP/2 session; it ends when this probe does.
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let outcome = tokio::time::timeout_at(
        deadline,
        call(sender, &addr, service.unwrap_or(""), user_agent),
    )
    .await;
    drop(driver);
    match outcome {
        Ok(Ok(SERVING)) => ProbeResult::Success,
        Ok(Ok(status)) => {
            ProbeResult::Failure(format!("service unhealthy (responded with {:?})", status_name(status)))
        }
        Ok(Err(RpcError::Status { code: UNIMPLEMENTED, message })) => ProbeResult::Failure(format!(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
        )),
        Ok(Err(e)) => ProbeResult::Failure(format!("error: health rpc probe failed: {e}")),
        Err(_) => ProbeResult::Failure(format!("timeout: health rpc did not complete within {}", go_duration(timeout))),
    }
}

/// Why a call failed: the server's gRPC status, or the transport.
#[derive(Debug)]
enum RpcError {
    Status { code: u32, message: String },
    Transport(String),
}

impl fmt::Display for RpcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RpcError::Status { code, message } => {
                write!(f, "rpc error: code = {} desc = {message}", code_name(*code))
            }
            RpcError::Transport(e) => write!(f, "rpc error: code = Unavailable desc = {e}"),
        }
    }
}

impl From<hyper::Error> for RpcError {
    fn from(e: hyper::Error) -> Self {
        RpcError::Transport(e.to_string())
    }
}

/// One unary call; returns the response's serving status.
async fn call(
    mut sender: SendRequest<Full<Bytes>>,
    authority: &str,
    service: &str,
    user_agent: &str,
) -> Result<u64, RpcError> {
    sender.ready().await?;
    let request = http::Request::post(format!("http://{authority}/grpc.health.v1.Health/Check"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("user-agent", user_agent)
        .body(Full::new(Bytes::from(request_frame(service))))
        .map_err(|e| RpcError::Transport(e.to_string()))?;
    let (head, mut body) = sender.send_request(request).await?.into_parts();
    if head.status != http::StatusCode::OK {
        return Err(RpcError::Status {
            code: code_for_http_status(head.status.as_u16()),
            message: format!(
                "unexpected HTTP status code received from server: {}",
                head.status.as_u16()
            ),
        });
    }
    // A "trailers-only" response carries the status in its headers and has no body.
    if let Some(status) = grpc_status(&head.headers) {
        status?;
    }
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame?.into_data() {
            Ok(chunk) => {
                if data.len() + chunk.len() > MAX_RESPONSE {
                    return Err(RpcError::Status {
                        code: 8,
                        message: "response message too large".into(),
                    });
                }
                data.extend_from_slice(&chunk);
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(t) = frame.into_trailers() {
            trailers = Some(t);
        }
    }
    match trailers.as_ref().and_then(grpc_status) {
        Some(status) => status?,
        None if grpc_status(&head.headers).is_some() => {}
        None => {
            return Err(RpcError::Status {
                code: 13,
                message: "server closed the stream without sending trailers".into(),
            })
        }
    }
    let message = unframe(&data).map_err(|m| RpcError::Status {
        code: 13,
        message: m,
    })?;
    response_status(message).map_err(|m| RpcError::Status {
        code: 13,
        message: m,
    })
}

/// `grpc-status` and `grpc-message` of a header block, if it has them.
fn grpc_status(headers: &HeaderMap) -> Option<Result<(), RpcError>> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(2);
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some(Err(RpcError::Status { code, message }))
}

/// gRPC's mapping of HTTP statuses to codes when a response is not gRPC (`http-grpc-status-mapping.md`).
fn code_for_http_status(status: u16) -> u32 {
    match status {
        400 => 13,             // Internal
        401 => 16,             // Unauthenticated
        403 => 7,              // PermissionDenied
        404 => UNIMPLEMENTED,  // Unimplemented
        429 | 502..=504 => 14, // Unavailable
        _ => 2,                // Unknown
    }
}

/// Go's `time.Duration` text for whole seconds and milliseconds ("1s", "200ms", "1.5s").
fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
#[path = "grpc_tests.rs"]
mod tests;
