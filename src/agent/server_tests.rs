//! The status endpoints with a stand-in supervisor, over a socket in a temporary directory and
//! 127.0.0.1 port 0.

use std::os::unix::fs::PermissionsExt;

use http_body_util::Empty;
use tokio::task::JoinHandle;

use super::*;
use crate::agent::status::{self, StatusClientError};
use crate::http::client;

/// Tasks aborted on drop.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn sample_status() -> AgentStatus {
    AgentStatus {
        node_name: "node-a".into(),
        manifest_dir: "/etc/kubernetes/manifests".into(),
        agent_pid: 42,
        runtime: "process".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        warnings: vec![],
        manifest_problems: vec![],
        pods: vec![],
        api: None,
    }
}

/// A supervisor that answers every status question with `status` (or never, when `None`).
fn supervisor(status: Option<AgentStatus>) -> (mpsc::UnboundedSender<Event>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(event) = rx.recv().await {
            if let Event::Status(reply) = event {
                match &status {
                    Some(status) => {
                        let _ = reply.send(status.clone());
                    }
                    None => held.push(reply),
                }
            }
        }
    });
    (tx, task)
}

#[tokio::test]
async fn the_socket_is_created_0600_in_a_0700_directory() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("run/boot/agent.sock");
    let _listener = bind_status_socket(&socket).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(&socket), 0o600, "socket mode");
    assert_eq!(mode(socket.parent().unwrap()), 0o700, "directory mode");
}

#[tokio::test]
async fn status_and_healthz_are_served_on_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let listener = bind_status_socket(&socket).unwrap();
    let (events, answering) = supervisor(Some(sample_status()));
    let _tasks = Tasks(vec![answering, tokio::spawn(serve_unix(listener, events))]);

    assert_eq!(status::fetch(&socket).await.unwrap(), sample_status());
    assert_eq!(status::request(&socket, "/healthz").await.unwrap(), b"ok");
    let missing = status::request(&socket, "/nothing").await.unwrap_err();
    assert!(missing.to_string().contains("404"), "{missing}");
    // The blocking client works from inside a runtime too.
    let socket_path = socket.clone();
    let blocking = tokio::task::spawn_blocking(move || status::fetch_blocking(&socket_path))
        .await
        .unwrap();
    assert_eq!(blocking.unwrap(), sample_status());
}

#[tokio::test]
async fn only_healthz_is_served_over_tcp_and_only_to_get() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (events, answering) = supervisor(Some(sample_status()));
    let _tasks = Tasks(vec![answering, tokio::spawn(serve_tcp(listener, events))]);
    let call = |method: Method, path: &'static str| async move {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        let answer = client::send(tcp, request, 1024).await.unwrap();
        (answer.status, answer.body)
    };
    assert_eq!(
        call(Method::GET, "/healthz").await,
        (StatusCode::OK, Bytes::from_static(b"ok"))
    );
    assert_eq!(call(Method::GET, "/status").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        call(Method::POST, "/healthz").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn a_stuck_supervisor_makes_healthz_fail() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (events, silent) = supervisor(None);
    let _tasks = Tasks(vec![silent, tokio::spawn(serve_tcp(listener, events))]);
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = Request::get("/healthz")
        .header("host", "127.0.0.1")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let answer = client::send(tcp, request, 1024).await.unwrap();
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body, NO_ANSWER.as_bytes());
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists(), "the stale socket file stays behind");
    let live = bind_status_socket(&socket).unwrap();
    assert!(matches!(bind_status_socket(&socket), Err(BindError::InUse)));
    drop(live);
    let err = status::fetch(&socket).await.unwrap_err();
    assert!(matches!(err, StatusClientError::NotRunning { .. }), "{err}");
}
