//! Tests of the gRPC health probe against a small `h2` server on 127.0.0.1.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::*;
use crate::probe::grpc_wire::frame;

const LONG: Duration = Duration::from_secs(5);
const UA: &str = "kube-probe/1.36";

/// A health server: service "" is SERVING, "down" NOT_SERVING, anything else NOT_FOUND
/// (trailers-only), like grpc-go's `health.Server`; `unimplemented` answers every call with
/// Unimplemented. Aborted on drop.
struct HealthServer {
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn health_server(unimplemented: bool) -> HealthServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = conn.accept().await {
                    tokio::spawn(answer(request, respond, unimplemented));
                }
            });
        }
    });
    HealthServer { port, task }
}

async fn answer(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    unimplemented: bool,
) {
    assert_eq!(request.uri().path(), "/grpc.health.v1.Health/Check");
    assert_eq!(request.headers()["content-type"], "application/grpc");
    assert_eq!(request.headers()["te"], "trailers");
    assert_eq!(request.headers()["user-agent"], UA);
    let mut body = request.into_body();
    let mut data = Vec::new();
    while let Some(Ok(chunk)) = body.data().await {
        data.extend_from_slice(&chunk);
    }
    let message = unframe(&data).unwrap().to_vec();
    let service = if message.is_empty() {
        String::new()
    } else {
        String::from_utf8(message[2..].to_vec()).unwrap()
    };
    let trailers_only = |code: &str, msg: &str| {
        Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", code)
            .header("grpc-message", msg)
            .body(())
            .unwrap()
    };
    if unimplemented {
        let _ = respond.send_response(
            trailers_only("12", "unknown%20service%20grpc.health.v1.Health"),
            true,
        );
        return;
    }
    let status = match service.as_str() {
        "" => 1u8,
        "down" => 2,
        _ => {
            let _ = respond.send_response(trailers_only("5", "unknown service"), true);
            return;
        }
    };
    let head = Response::builder()
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let Ok(mut stream) = respond.send_response(head, false) else {
        return;
    };
    let _ = stream.send_data(Bytes::from(frame(&[0x08, status])), false);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = stream.send_trailers(trailers);
}

#[tokio::test]
async fn serving_is_success() {
    let server = health_server(false).await;
    assert_eq!(
        check("127.0.0.1", server.port, None, UA, LONG).await,
        ProbeResult::Success
    );
}

#[tokio::test]
async fn not_serving_fails_like_the_kubelet() {
    let server = health_server(false).await;
    assert_eq!(
        check("127.0.0.1", server.port, Some("down"), UA, LONG).await,
        ProbeResult::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
}

#[tokio::test]
async fn unknown_service_reports_the_grpc_status() {
    let server = health_server(false).await;
    assert_eq!(
        check("127.0.0.1", server.port, Some("nope"), UA, LONG).await,
        ProbeResult::Failure(
            "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"
                .into()
        )
    );
}

#[tokio::test]
async fn server_without_the_health_service() {
    let server = health_server(true).await;
    assert_eq!(
        check("127.0.0.1", server.port, None, UA, LONG).await,
        ProbeResult::Failure(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): \
             unknown service grpc.health.v1.Health"
                .into()
        )
    );
}

#[tokio::test]
async fn refused_connection() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_eq!(
        check("127.0.0.1", port, None, UA, LONG).await,
        ProbeResult::Failure(format!(
            "error: failed to connect service at \"127.0.0.1:{port}\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        ))
    );
}

#[tokio::test]
async fn silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accepts and holds connections without ever speaking HTTP/2.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let begun = std::time::Instant::now();
    let result = check("127.0.0.1", port, None, UA, Duration::from_millis(200)).await;
    holder.abort();
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "took {:?}",
        begun.elapsed()
    );
    let ProbeResult::Failure(message) = result else {
        panic!("a silent server must fail the probe")
    };
    assert!(
        message.starts_with("timeout: ") && message.contains("within 200ms"),
        "{message}"
    );
}

#[test]
fn durations_print_like_go() {
    assert_eq!(go_duration(Duration::from_secs(1)), "1s");
    assert_eq!(go_duration(Duration::from_millis(200)), "200ms");
    assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
}
