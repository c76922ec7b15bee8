//! An `httpGet` probe under the agent, against a server in this test on 127.0.0.1: it carries
//! `User-Agent: kube-probe/<major>.<minor>` of the agent's Kubernetes version, and an answer that
//! redirects to another host is not followed and passes (the kubelet's warning), so the pod
//! becomes ready without anything being sent to that host.

#[path = "common/agent_support.rs"]
mod agent_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(25);

/// Aborts the server task on drop.
struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Answers every request with a redirect to a documentation address (never contacted) and
/// records the request heads.
async fn redirecting_server() -> (u16, Arc<Mutex<Vec<String>>>, Server) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = tcp
                    .write_all(
                        b"HTTP/1.1 302 Found\r\nLocation: http://192.0.2.1/login\r\nContent-Length: 0\r\n\r\n",
                    )
                    .await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    (port, heads, Server(task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_probe_sends_the_versioned_user_agent_and_passes_a_foreign_redirect() {
    let (port, heads, _server) = redirecting_server().await;
    let mut agent = TestAgent::new(|options| {
        options.kubernetes_version = "v1.36.2".parse().unwrap();
    });
    agent.start().await;
    let probe = format!(
        "    readinessProbe:\n      httpGet: {{host: 127.0.0.1, port: {port}, path: /ready}}\n      periodSeconds: 1\n"
    );
    agent.write_manifest("web.yaml", &sh_pod("web", "exec sleep 1020", &probe, ""));
    agent.wait_ready("web", T).await;
    let heads = heads.lock().unwrap().clone();
    assert!(!heads.is_empty());
    for head in &heads {
        assert!(head.starts_with("GET /ready HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nuser-agent: kube-probe/1.36\r\n"),
            "{head}"
        );
    }
    agent.stop().await;
}
