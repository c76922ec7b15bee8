//! The agent's pod lifecycle with real processes: start, crash and CrashLoopBackOff, manifest
//! edits and removals, grace periods, broken edits, init containers, duplicate names.

#[path = "common/agent_support.rs"]
mod agent_support;

use std::time::{Duration, Instant};

use agent_support::*;
use boot::agent::status::{ContainerState, PodPhase};

const T: Duration = Duration::from_secs(20);

/// Nanosecond timestamps a script appended to `file`, one per line.
fn stamps(file: &std::path::Path) -> Vec<u128> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restarts_follow_the_backoff_sequence() {
    let mut agent = TestAgent::new(|o| {
        // Long enough that process start-up latency on a loaded machine (a few hundred ms)
        // cannot be mistaken for a back-off step.
        o.backoff.initial = Duration::from_millis(1000);
        o.backoff.max = Duration::from_secs(10);
    });
    agent.start().await;
    let starts = agent.path("starts");
    agent.write_manifest(
        "crash.yaml",
        &sh_pod(
            "crash",
            &format!("date +%s%N >> {}; exit 3", starts.display()),
            "",
            "",
        ),
    );
    let deadline = Instant::now() + T;
    while stamps(&starts).len() < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} starts",
            stamps(&starts).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = stamps(&starts);
    let gaps: Vec<f64> = s.windows(2).map(|w| (w[1] - w[0]) as f64 / 1e6).collect();
    // Kubelet sequence: immediate, then 1, 2, 4 s. A loaded machine only ever adds time (process
    // start-up, scheduling), so the back-off shows in lower bounds: each wait at least its step.
    assert!(gaps[0] < 900.0, "first restart is immediate: {gaps:?}");
    assert!(
        gaps[1] >= 990.0,
        "second waits the initial back-off: {gaps:?}"
    );
    assert!(gaps[2] >= 1990.0, "doubles: {gaps:?}");
    assert!(gaps[3] >= 3990.0, "doubles again: {gaps:?}");
    let pod = agent
        .wait_pod("crash", T, |p| match &p.containers[0].state {
            ContainerState::Waiting { reason, .. } if reason == "CrashLoopBackOff" => {
                Some(p.clone())
            }
            _ => None,
        })
        .await;
    let reason = pod.reason.unwrap();
    assert!(
        reason.contains("CrashLoopBackOff") && reason.contains("exit code 3"),
        "{reason}"
    );
    assert!(!pod.ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backoff_resets_after_good_running() {
    let mut agent = TestAgent::new(|o| {
        o.backoff.initial = Duration::from_millis(400);
        o.backoff.reset_after = Duration::from_millis(1000);
    });
    agent.start().await;
    let (count, starts, ends) = (
        agent.path("count"),
        agent.path("starts"),
        agent.path("ends"),
    );
    // Runs 1-3 crash at once (waits 0, 400, 800 ms); run 4 runs 1.6 s, longer than reset_after,
    // so run 5 starts at once instead of after 1.6 s.
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; date +%s%N >> {s}; \
         if [ $n -eq 4 ]; then sleep 1.6; fi; date +%s%N >> {e}; exit 1",
        c = count.display(),
        s = starts.display(),
        e = ends.display()
    );
    agent.write_manifest("reset.yaml", &sh_pod("reset", &script, "", ""));
    let deadline = Instant::now() + T;
    while stamps(&starts).len() < 5 {
        assert!(
            Instant::now() < deadline,
            "only {} starts",
            stamps(&starts).len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (s, e) = (stamps(&starts), stamps(&ends));
    let wait_after_3 = (s[3] - e[2]) as f64 / 1e6;
    let wait_after_4 = (s[4] - e[3]) as f64 / 1e6;
    assert!(
        wait_after_3 >= 790.0,
        "backing off before the good run: {wait_after_3} ms"
    );
    assert!(
        wait_after_4 < 600.0,
        "back-off reset after good running: {wait_after_4} ms (without reset: 1600)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_edit_replaces_and_removal_stops_the_pod() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    agent.write_manifest("web.yaml", &sh_pod("web", "exec sleep 1001", "", ""));
    let old = agent.wait_ready("web", T).await;
    agent.write_manifest("web.yaml", &sh_pod("web", "exec sleep 1002", "", ""));
    let new = agent
        .wait_pod("web", T, |p| {
            p.pid().filter(|pid| *pid != old && p.healthy())
        })
        .await;
    assert!(!alive(old), "the old process is gone");
    assert_eq!(processes_with("sleep 1001").len(), 0);
    assert_eq!(processes_with("sleep 1002"), vec![new]);
    let removed = Instant::now();
    agent.remove_manifest("web.yaml");
    agent
        .wait_for("the pod to leave", T, |s| s.pods.is_empty().then_some(()))
        .await;
    assert!(!alive(new));
    assert!(
        removed.elapsed() < Duration::from_secs(30),
        "within the grace period"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ignoring_group_is_killed_after_the_grace_period() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    // The shell and both children ignore SIGTERM (an ignored signal stays ignored across exec).
    let script = "trap \"\" TERM; sleep 1003 & sleep 1003 & wait";
    agent.write_manifest(
        "stubborn.yaml",
        &sh_pod(
            "stubborn",
            script,
            "",
            "  terminationGracePeriodSeconds: 2\n",
        ),
    );
    let pid = agent.wait_ready("stubborn", T).await;
    wait_until("both children", T, || async {
        (group_members(pid).len() == 3).then_some(())
    })
    .await;
    let cgroup_dirs = boot::agent::records::load_all(&agent.options.records_dir()).0[0].containers
        [0]
    .process
    .clone()
    .unwrap()
    .cgroups;
    let removed = Instant::now();
    agent.remove_manifest("stubborn.yaml");
    wait_until("the group to die", T, || async {
        group_members(pid).is_empty().then_some(())
    })
    .await;
    let took = removed.elapsed();
    assert!(
        took >= Duration::from_millis(1900),
        "SIGKILL only after the 2 s grace period ({took:?})"
    );
    assert!(
        took < Duration::from_secs(8),
        "killed soon after the grace period ({took:?})"
    );
    assert!(processes_with("sleep 1003").is_empty());
    for dir in cgroup_dirs {
        assert!(
            boot::runtime::process::cgroup::pids(&dir).is_empty(),
            "{} is empty",
            dir.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_edit_keeps_the_last_good_pod_and_reports_it() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    agent.write_manifest("keep.yaml", &sh_pod("keep", "exec sleep 1004", "", ""));
    let pid = agent.wait_ready("keep", T).await;
    agent.write_manifest(
        "keep.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: keep\nspec: [",
    );
    let problem = agent
        .wait_for("the manifest error", T, |s| {
            s.manifest_problems.first().cloned()
        })
        .await;
    assert_eq!(problem.kept_running.as_deref(), Some("keep-node1"));
    let status = agent.status();
    let pod = status.pod("keep").unwrap();
    assert_eq!(pod.pid(), Some(pid));
    assert!(
        pod.manifest_error.as_deref().unwrap().contains("keep.yaml"),
        "{pod:?}"
    );
    assert!(
        !status.all_healthy(),
        "a broken manifest makes `boot status` fail"
    );
    // A valid API-object reference is refused with a clear error as well.
    agent.write_manifest(
        "keep.yaml",
        &sh_pod(
            "keep",
            "exec sleep 1004",
            "    envFrom: [{secretRef: {name: s}}]\n",
            "",
        ),
    );
    agent
        .wait_for("the envFrom error", T, |s| {
            s.manifest_problems
                .iter()
                .find(|p| p.error.contains("envFrom"))
                .map(|_| ())
        })
        .await;
    assert!(alive(pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_and_duplicates_are_refused() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    let order = agent.path("order");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: ordered}}\nspec:\n  hostNetwork: true\n  initContainers:\n  - {{name: one, command: [sh, -c, 'sleep 0.2; echo one >> {o}']}}\n  - {{name: two, command: [sh, -c, 'echo two >> {o}']}}\n  containers:\n  - {{name: app, command: [sh, -c, 'echo app >> {o}; exec sleep 1005']}}\n",
        o = order.display()
    );
    agent.write_manifest("a.yaml", &manifest);
    agent.wait_ready("ordered", T).await;
    // Ready means running (no readiness probe); the shell may not have written its line yet.
    let deadline = Instant::now() + T;
    while std::fs::read_to_string(&order)
        .unwrap_or_default()
        .lines()
        .count()
        < 3
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(std::fs::read_to_string(&order).unwrap(), "one\ntwo\napp\n");
    agent.write_manifest("b.yaml", &manifest.replace("1005", "1006"));
    let problem = agent
        .wait_for("the duplicate", T, |s| s.manifest_problems.first().cloned())
        .await;
    assert!(
        problem.error.contains("already defined by") && problem.path.ends_with("b.yaml"),
        "{problem:?}"
    );
    assert!(processes_with("sleep 1006").is_empty());
    let status = agent.status();
    assert_eq!(status.pods.len(), 1);
    assert_eq!(status.pods[0].phase, PodPhase::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_binary_is_a_clear_error() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    agent.write_manifest(
        "nobin.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: nobin}\nspec:\n  containers: [{name: c, image: 'registry.k8s.io/no-such-binary:v1'}]\n",
    );
    let reason = agent
        .wait_pod("nobin", T, |p| {
            p.reason.clone().filter(|r| r.contains("not found"))
        })
        .await;
    assert!(
        reason.contains("no-such-binary")
            && reason.contains("nobin-node1")
            && reason.contains("container c"),
        "{reason}"
    );
}
