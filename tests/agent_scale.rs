//! 100 static pods (stand-ins listening on loopback ports, with TCP probes) all reach Ready.

#[path = "common/agent_support.rs"]
mod agent_support;

use std::time::{Duration, Instant};

use agent_support::*;

const PODS: usize = 100;

pub fn standin_pod(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: kube-system}}\nspec:\n  hostNetwork: true\n  containers:\n  - name: main\n    image: boot-standin\n    args: ['--listen=127.0.0.1:{port}']\n    readinessProbe: {{tcpSocket: {{host: 127.0.0.1, port: {port}}}, periodSeconds: 1}}\n    livenessProbe: {{tcpSocket: {{host: 127.0.0.1, port: {port}}}, periodSeconds: 10}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_pods_become_ready() {
    let mut agent = TestAgent::new(|o| o.print_events = false);
    agent.start().await;
    let started = Instant::now();
    for (i, port) in free_ports(PODS).into_iter().enumerate() {
        agent.write_manifest(
            &format!("pod-{i:03}.yaml"),
            &standin_pod(&format!("pod-{i:03}"), port),
        );
    }
    let status = agent
        .wait_for("100 ready pods", Duration::from_secs(90), |s| {
            (s.pods.len() == PODS && s.pods.iter().all(|p| p.healthy())).then(|| s.clone())
        })
        .await;
    eprintln!(
        "{PODS} pods ready {:?} after the manifests were written",
        started.elapsed()
    );
    assert!(status.all_healthy());
    assert_eq!(status.pods.iter().map(|p| p.restarts).sum::<u32>(), 0);
}
