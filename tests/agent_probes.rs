//! Probes under the agent: liveness restarts, readiness only flips Ready, a startup probe
//! protects a slow starter and restarts one that never starts; a cgroup memory limit is applied.

#[path = "common/agent_support.rs"]
mod agent_support;
#[path = "common/require.rs"]
mod require;

use std::time::Duration;

use agent_support::*;

const T: Duration = Duration::from_secs(25);

fn exec_probe(kind: &str, test: &str, extra: &str) -> String {
    format!(
        "    {kind}:\n      exec: {{command: [sh, -c, '{test}']}}\n      periodSeconds: 1\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_failure_restarts_the_container() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    let flag = agent.path("unhealthy");
    let probe = exec_probe(
        "livenessProbe",
        &format!("test ! -e {}", flag.display()),
        "      failureThreshold: 2\n",
    );
    agent.write_manifest("live.yaml", &sh_pod("live", "exec sleep 1010", &probe, ""));
    let pid = agent.wait_ready("live", T).await;
    std::fs::write(&flag, "").unwrap();
    let pod = agent
        .wait_pod("live", T, |p| (p.restarts == 1).then(|| p.clone()))
        .await;
    let last = pod.containers[0].last_state.clone().unwrap();
    assert!(last.reason.contains("Liveness probe failed"), "{last:?}");
    assert!(!alive(pid), "the old process was killed");
    std::fs::remove_file(&flag).unwrap();
    let new = agent.wait_ready("live", T).await;
    assert_ne!(new, pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_failure_only_flips_ready() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    let flag = agent.path("not-ready");
    std::fs::write(&flag, "").unwrap();
    let probe = exec_probe(
        "readinessProbe",
        &format!("test ! -e {}", flag.display()),
        "",
    );
    agent.write_manifest(
        "ready.yaml",
        &sh_pod("ready", "exec sleep 1011", &probe, ""),
    );
    let reason = agent
        .wait_pod("ready", T, |p| {
            p.reason
                .clone()
                .filter(|r| r.contains("readiness probe failing"))
        })
        .await;
    assert!(reason.contains("container main"), "{reason}");
    let pid = agent.wait_pod("ready", T, |p| p.pid()).await;
    std::fs::remove_file(&flag).unwrap();
    assert_eq!(agent.wait_ready("ready", T).await, pid);
    std::fs::write(&flag, "").unwrap();
    agent
        .wait_pod("ready", T, |p| (!p.ready).then_some(()))
        .await;
    // Several failing periods later: still the same process, never restarted.
    agent
        .wait_pod("ready", T, |p| {
            p.containers[0].probes[0]
                .consecutive_failures
                .ge(&4)
                .then_some(())
        })
        .await;
    let status = agent.status();
    let pod = status.pod("ready").unwrap();
    assert_eq!((pod.pid(), pod.restarts), (Some(pid), 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_probe_protects_a_slow_starter_and_exhaustion_restarts() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    // Up after 2.5 s; the liveness probe alone (1 failure allowed) would kill it long before.
    let up = agent.path("up");
    let check = format!("test -e {}", up.display());
    let probes = format!(
        "{}{}",
        exec_probe("startupProbe", &check, "      failureThreshold: 10\n"),
        exec_probe("livenessProbe", &check, "      failureThreshold: 1\n")
    );
    let script = format!("sleep 2.5; touch {}; exec sleep 1012", up.display());
    agent.write_manifest("slow.yaml", &sh_pod("slow", &script, &probes, ""));
    agent.wait_ready("slow", T).await;
    assert_eq!(agent.status().pod("slow").unwrap().restarts, 0);

    let never = exec_probe("startupProbe", "false", "      failureThreshold: 2\n");
    agent.write_manifest(
        "never.yaml",
        &sh_pod("never", "exec sleep 1013", &never, ""),
    );
    let pod = agent
        .wait_pod("never", T, |p| (p.restarts >= 1).then(|| p.clone()))
        .await;
    let last = pod.containers[0].last_state.clone().unwrap();
    assert!(last.reason.contains("Startup probe failed"), "{last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_is_in_the_cgroup() {
    if !require::root("cgroups") {
        return;
    }
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    let resources = "    resources: {limits: {memory: 64Mi, cpu: 500m}}\n";
    agent.write_manifest(
        "limited.yaml",
        &sh_pod("limited", "exec sleep 1014", resources, ""),
    );
    let pid = agent.wait_ready("limited", T).await;
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let memory = cgroups
        .lines()
        .find_map(|l| {
            let parts: Vec<&str> = l.splitn(3, ':').collect();
            (parts[1] == "memory" || parts[1].is_empty()).then(|| parts[2].to_string())
        })
        .unwrap();
    assert!(
        memory.contains(&format!("boot-test-{}", std::process::id())),
        "{memory}"
    );
    let v1 = format!("/sys/fs/cgroup/memory{memory}/memory.limit_in_bytes");
    let v2 = format!("/sys/fs/cgroup{memory}/memory.max");
    let limit = std::fs::read_to_string(&v1)
        .or_else(|_| std::fs::read_to_string(&v2))
        .unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    agent.remove_manifest("limited.yaml");
    agent
        .wait_for("the pod to leave", T, |s| s.pods.is_empty().then_some(()))
        .await;
    let dir = std::path::PathBuf::from(format!("/sys/fs/cgroup/memory{memory}"));
    wait_for_async("the cgroup to be removed", T, || !dir.exists()).await;
}
