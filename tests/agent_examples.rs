//! The classic static pod example as `kubectl run --dry-run=client -o yaml` writes it, and the
//! `boot status` / `boot logs` commands against a running agent.

#[path = "common/agent_support.rs"]
mod agent_support;
#[path = "common/require.rs"]
mod require;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use agent_support::*;
use boot::agent::status::PodPhase;

const T: Duration = Duration::from_secs(20);

/// Just enough API discovery for `kubectl run --dry-run=client`, on a loopback port.
fn fake_discovery() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .split('?')
                .next()
                .unwrap_or("/")
                .to_string();
            let body = match path.as_str() {
                "/api" => {
                    r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}"#
                }
                "/apis" => r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#,
                "/api/v1" => {
                    r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["create","get"]}]}"#
                }
                _ => "",
            };
            let code = if body.is_empty() {
                "404 Not Found"
            } else {
                "200 OK"
            };
            let _ = write!(stream, "HTTP/1.1 {code}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
        }
    });
    port
}

fn kubectl_static_busybox() -> Option<String> {
    let kubectl = require::tool("kubectl")?;
    let port = fake_discovery();
    let out = Command::new(kubectl)
        .arg(format!("--server=http://127.0.0.1:{port}"))
        .args([
            "run",
            "--restart=Never",
            "--image=busybox",
            "static-busybox",
            "--dry-run=client",
            "-o",
            "yaml",
            "--command",
            "--",
            "sleep",
            "1000",
        ])
        .output()
        .expect("kubectl is installed");
    assert!(
        out.status.success(),
        "kubectl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn boot(agent: &TestAgent, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_boot"))
        .args(args)
        .arg("--root")
        .arg(agent.dir.path())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_static_busybox_runs_once_in_its_own_netns_and_stops_when_deleted() {
    let Some(manifest) = kubectl_static_busybox() else {
        return;
    };
    assert!(
        manifest.contains("restartPolicy: Never") && !manifest.contains("hostNetwork"),
        "{manifest}"
    );
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    agent.write_manifest("static-busybox.yaml", &manifest);
    let pid = agent.wait_ready("static-busybox", T).await;
    assert_eq!(
        processes_with("sleep 1000"),
        vec![pid],
        "runs `sleep 1000` once"
    );
    if require::root("network namespaces") {
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let its = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
        assert_ne!(own, its, "its own network namespace");
    }
    let (code, text) = boot(&agent, &["status"]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("static-busybox-node1") && text.contains(&pid.to_string()),
        "{text}"
    );

    agent.remove_manifest("static-busybox.yaml");
    agent
        .wait_for("the pod to leave", T, |s| s.pods.is_empty().then_some(()))
        .await;
    assert!(!alive(pid));
    assert!(processes_with("sleep 1000").is_empty());

    // restartPolicy Never: once it ends, it stays ended.
    agent.write_manifest("static-busybox.yaml", &manifest);
    let pid = agent.wait_ready("static-busybox", T).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let pod = agent
        .wait_pod("static-busybox", T, |p| {
            (p.phase == PodPhase::Failed).then(|| p.clone())
        })
        .await;
    assert_eq!(pod.restarts, 0);
    assert!(pod.reason.unwrap().contains("signal 9"));
    assert!(processes_with("sleep 1000").is_empty(), "not restarted");
    let (code, text) = boot(&agent, &["status"]);
    assert_eq!(code, 1, "a failed pod makes status exit 1: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_status_commands() {
    let mut agent = TestAgent::new(|_| {});
    let (code, text) = boot(&agent, &["status"]);
    assert_eq!(code, 6, "{text}");
    assert!(text.contains("the agent is not running"), "{text}");
    agent.start().await;
    agent.write_manifest(
        "talk.yaml",
        &sh_pod(
            "talk",
            "echo one; echo two; echo three; echo oops >&2; exec sleep 1030",
            "",
            "",
        ),
    );
    agent.wait_ready("talk", T).await;
    let last = std::cell::RefCell::new(String::new());
    let text = poll_until_async(
        T,
        Duration::from_millis(50),
        || {
            let (_, text) = boot(&agent, &["logs", "talk"]);
            *last.borrow_mut() = text.clone();
            std::future::ready((text.contains("oops") && text.contains("three")).then_some(text))
        },
        || format!("logs: {}", last.borrow()),
    )
    .await;
    // stdout and stderr are relayed separately: only each stream's own order is fixed.
    let stdout: Vec<&str> = text.lines().filter(|l| *l != "oops").collect();
    assert_eq!(stdout, ["one", "two", "three"], "{text}");
    let (code, text) = boot(&agent, &["logs", "talk-node1", "-c", "main", "--tail", "1"]);
    assert_eq!((code, text.lines().count()), (0, 1), "{text}");
    let (code, text) = boot(&agent, &["logs", "talk", "-c", "nope"]);
    assert_eq!(code, 2, "{text}");
    // The raw file is in the CRI format.
    let pod = agent.status().pod("talk").unwrap().clone();
    let raw = std::fs::read_to_string(&pod.containers[0].log_path).unwrap();
    assert!(raw.lines().any(|l| l.ends_with(" stdout F one")), "{raw}");
    assert!(raw.lines().any(|l| l.ends_with(" stderr F oops")), "{raw}");
    let (code, json) = boot(&agent, &["status", "-o", "json"]);
    assert_eq!(code, 0, "{json}");
    assert!(json.contains("\"name\": \"talk-node1\""), "{json}");
}
