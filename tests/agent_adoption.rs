//! The agent survives its own restarts (design §5 ★): `kill -9` of a `boot agent` process leaves
//! the pods running and the next agent adopts them (same pids, no duplicates, restart counts
//! kept); a recorded pid that now belongs to another process is never touched.

#[path = "common/agent_support.rs"]
mod agent_support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use agent_support::*;
use boot::agent::records::{save, ContainerRecord, PodRecord};
use boot::agent::source::StaticPod;
use boot::agent::status::ContainerState;
use boot::runtime::names::{PodName, PodUid};
use boot::runtime::ContainerHandle;

const T: Duration = Duration::from_secs(25);

/// A child process killed (SIGKILL) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `boot agent` as a real process over the test agent's root.
fn spawn_agent(agent: &TestAgent, log: &str) -> Killed {
    let out = std::fs::File::create(agent.path(log)).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_boot"))
        .args([
            "agent",
            "--runtime",
            "process",
            "--node-name",
            NODE,
            "--status-address",
            "none",
            "--backoff-initial-ms",
            "100",
        ])
        .arg("--root")
        .arg(agent.dir.path())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap();
    Killed(child)
}

fn adopted(p: &boot::agent::status::PodStatus) -> bool {
    p.containers
        .iter()
        .all(|c| matches!(c.state, ContainerState::Running { adopted: true, .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_leaves_pods_running_and_the_next_one_adopts_them() {
    let agent = TestAgent::new(|_| {});
    let count = agent.path("count");
    // Crashes once, then runs: restart count 1 before the agent dies.
    let flaky = format!(
        "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; [ $n -eq 1 ] && exit 1; exec sleep 1020",
        c = count.display()
    );
    // Marked as this test's: the agent dies, so the pods are not this process's descendants.
    agent.write_manifest("flaky.yaml", &sh_pod("flaky", &flaky, &owner_env(), ""));
    // Its own network namespace.
    agent.write_manifest(
        "quiet.yaml",
        &sh_pod("quiet", "exec sleep 1021", &owner_env(), "").replace("  hostNetwork: true\n", ""),
    );
    let mut first = spawn_agent(&agent, "agent1.log");
    let flaky_pid = agent
        .wait_pod("flaky", T, |p| {
            if p.healthy() && p.restarts == 1 {
                p.pid()
            } else {
                None
            }
        })
        .await;
    let quiet_pid = agent.wait_ready("quiet", T).await;

    first.0.kill().unwrap(); // SIGKILL
    first.0.wait().unwrap();
    assert!(
        alive(flaky_pid) && alive(quiet_pid),
        "pods survive kill -9 of the agent"
    );

    let _second = spawn_agent(&agent, "agent2.log");
    let status = agent
        .wait_for(
            "both pods adopted and ready, quiet's sandbox found again",
            T,
            |s| {
                // The sandbox is found again on a blocking thread right after adoption.
                let sandbox_back = s
                    .pod("quiet")
                    .is_some_and(|p| p.network.contains("own network namespace"));
                (s.pods.len() == 2
                    && s.pods.iter().all(|p| p.healthy() && adopted(p))
                    && sandbox_back)
                    .then(|| s.clone())
            },
        )
        .await;
    assert_eq!(status.pod("flaky").unwrap().pid(), Some(flaky_pid));
    assert_eq!(
        status.pod("flaky").unwrap().restarts,
        1,
        "restart count preserved"
    );
    assert_eq!(status.pod("quiet").unwrap().pid(), Some(quiet_pid));
    assert!(status
        .pod("quiet")
        .unwrap()
        .network
        .contains("own network namespace"));
    assert_eq!(
        processes_with("sleep 1020"),
        vec![flaky_pid],
        "no duplicate"
    );
    assert_eq!(
        processes_with("sleep 1021"),
        vec![quiet_pid],
        "no duplicate"
    );

    // An adopted process's exit is still noticed (through its pidfd) and it is restarted.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(quiet_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let new_pid = agent
        .wait_pod("quiet", T, |p| {
            p.pid().filter(|pid| *pid != quiet_pid && p.healthy())
        })
        .await;
    let pod = agent.status().pod("quiet").unwrap().clone();
    assert_eq!(pod.restarts, 1);
    assert_eq!(
        pod.containers[0].last_state.as_ref().unwrap().exit_code,
        None,
        "an adopted exit code is unknown"
    );
    assert!(alive(new_pid));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_pid_now_used_by_another_process_is_left_alone() {
    let mut agent = TestAgent::new(|_| {});
    let unrelated = Killed(Command::new("sleep").arg("1022").spawn().unwrap());
    let pid = unrelated.0.id() as i32;
    let ticks = boot::runtime::linux::proc::stat(pid).unwrap().start_ticks;
    let manifest = sh_pod("victim", "exec sleep 1023", "", "");
    agent.write_manifest("victim.yaml", &manifest);
    let pod = StaticPod::parse(&agent.manifest("victim.yaml"), manifest.as_bytes(), NODE).unwrap();
    // As if a previous agent had run the pod as `pid`, which has since been reused.
    let stale = ContainerHandle {
        pid,
        start_ticks: ticks + 12345,
        started_at: SystemTime::now(),
        cgroups: vec![],
        container_id: None,
        image_id: None,
    };
    let container = ContainerRecord {
        name: "main".into(),
        init: false,
        restart_count: 2,
        process: Some(stale),
        completed: false,
    };
    let records = agent.options.records_dir();
    let record = PodRecord {
        uid: pod.uid.clone(),
        config_hash: pod.config_hash.clone(),
        full_name: pod.full_name.clone(),
        manifest: pod.path.clone(),
        pod: Some(pod.pod.clone()),
        sandbox: None,
        containers: vec![container.clone()],
    };
    save(&records, &record).unwrap();
    // And a pod whose manifest is gone, recorded with the same reused pid.
    let orphan = PodRecord {
        uid: PodUid::new("0123").unwrap(),
        config_hash: "0123".into(),
        full_name: PodName::new("gone-node1").unwrap(),
        manifest: "/nowhere".into(),
        pod: None,
        sandbox: None,
        containers: vec![container],
    };
    save(&records, &orphan).unwrap();

    agent.start().await;
    let victim = agent.wait_ready("victim", T).await;
    assert_ne!(victim, pid);
    assert_eq!(
        agent.status().pod("victim").unwrap().restarts,
        3,
        "recorded count 2, plus this restart"
    );
    assert!(
        !records.join("0123.json").exists(),
        "the orphan record is dropped"
    );
    assert!(alive(pid), "the unrelated process was never touched");
}
