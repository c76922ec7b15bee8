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

/// How late a restart may be on a loaded machine (process exit noticed, relay and `sh` started,
/// scheduling). Smaller than half of every difference between neighbouring steps below, so a
/// late restart passes but a wrong step (1 s where 2 s was due, no cap, no reset) does not.
const LATENESS: f64 = 700.0;
/// Timer and `date` granularity: a restart may appear this much early.
const EARLINESS: f64 = 10.0;

/// Starts `s` and ends `e` of the runs (ns): the wait before each restart, in ms.
fn waits(s: &[u128], e: &[u128]) -> Vec<f64> {
    s.iter()
        .skip(1)
        .zip(e)
        .map(|(start, end)| (*start as f64 - *end as f64) / 1e6)
        .collect()
}

/// Each wait is its step of `expected` (ms), at most `LATENESS` late.
fn assert_waits(waits: &[f64], expected: &[f64], what: &str) {
    assert!(waits.len() >= expected.len(), "{what}: only {waits:?}");
    for (i, (wait, step)) in waits.iter().zip(expected).enumerate() {
        assert!(
            *wait >= step - EARLINESS && *wait <= step + LATENESS,
            "{what}: restart {} waited {wait:.0} ms, expected {step} ms (+{LATENESS} late at most); \
             all waits {waits:.0?}, expected {expected:?}",
            i + 1
        );
    }
}

/// Waits until `n` runs of the pod have started and ended; returns their (start, end) stamps.
async fn runs(
    starts: &std::path::Path,
    ends: &std::path::Path,
    n: usize,
) -> (Vec<u128>, Vec<u128>) {
    poll_until_async(
        Duration::from_secs(60),
        Duration::from_millis(50),
        || std::future::ready((stamps(ends).len() >= n).then_some(())),
        || format!("only {} runs ended", stamps(ends).len()),
    )
    .await;
    (stamps(starts), stamps(ends))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_restarts_follow_the_backoff_sequence() {
    // The kubelet's sequence scaled from 10 s to 1 s, with the 300 s cap at 4 s: restarts wait
    // 0, 1, 2, 4, 4 s after each crash.
    let mut agent = TestAgent::new(|o| {
        o.backoff.initial = Duration::from_millis(1000);
        o.backoff.max = Duration::from_secs(4);
    });
    agent.start().await;
    let (starts, ends) = (agent.path("starts"), agent.path("ends"));
    agent.write_manifest(
        "crash.yaml",
        &sh_pod(
            "crash",
            &format!(
                "date +%s%N >> {}; date +%s%N >> {}; exit 3",
                starts.display(),
                ends.display()
            ),
            "",
            "",
        ),
    );
    let (s, e) = runs(&starts, &ends, 6).await;
    assert_waits(
        &waits(&s, &e),
        &[0.0, 1000.0, 2000.0, 4000.0, 4000.0],
        "immediate, then doubling from the initial back-off up to the cap",
    );
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
    // Back-off 1 s doubling, reset after 2.5 s of running (the kubelet: 10 s, 10 min).
    let mut agent = TestAgent::new(|o| {
        o.backoff.initial = Duration::from_millis(1000);
        o.backoff.max = Duration::from_secs(60);
        o.backoff.reset_after = Duration::from_millis(2500);
    });
    agent.start().await;
    let (count, starts, ends) = (
        agent.path("count"),
        agent.path("starts"),
        agent.path("ends"),
    );
    // Runs 1-3 crash at once (then waits 0, 1, 2 s); run 4 runs 3 s, longer than reset_after
    // (counted from its start), so the sequence starts over: run 5 at once, run 6 after 1 s.
    let script = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; date +%s%N >> {s}; \
         if [ $n -eq 4 ]; then sleep 3; fi; date +%s%N >> {e}; exit 1",
        c = count.display(),
        s = starts.display(),
        e = ends.display()
    );
    agent.write_manifest("reset.yaml", &sh_pod("reset", &script, "", ""));
    let (s, e) = runs(&starts, &ends, 6).await;
    // Without the reset the waits would be 0, 1, 2, 4, 8 s.
    assert_waits(
        &waits(&s, &e),
        &[0.0, 1000.0, 2000.0, 0.0, 1000.0],
        "the sequence starts over after good running",
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
    wait_for_async("both children", T, || group_members(pid).len() == 3).await;
    let cgroup_dirs = boot::agent::records::load_all(&agent.options.records_dir()).0[0].containers
        [0]
    .process
    .clone()
    .unwrap()
    .cgroups;
    let removed = Instant::now();
    agent.remove_manifest("stubborn.yaml");
    wait_for_async("the group to die", T, || group_members(pid).is_empty()).await;
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
            boot::runtime::linux::cgroup::pids(&dir).is_empty(),
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
    let lines = || std::fs::read_to_string(&order).unwrap_or_default();
    poll_until_async(
        T,
        wait::EVERY,
        || std::future::ready((lines().lines().count() >= 3).then_some(())),
        || format!("not three lines in {}: {:?}", order.display(), lines()),
    )
    .await;
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
