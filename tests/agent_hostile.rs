//! Manifests as an attacker (or a careless user) writes them: fields that would become paths
//! outside boot's directories, FIFOs and symlinks in the manifest directory, alias bombs, a
//! `metadata.uid` that would pin an edited pod, and a manifest that breaks while the agent is down.

#[path = "common/agent_support.rs"]
mod agent_support;
#[path = "common/require.rs"]
mod require;

use std::time::Duration;

use agent_support::*;

const T: Duration = Duration::from_secs(20);

fn with_metadata(pod: &str, extra: &str) -> String {
    pod.replace(
        "  namespace: kube-system\n",
        &format!("  namespace: kube-system\n{extra}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_uid_naming_a_host_file_is_refused_and_the_file_untouched() {
    let mut agent = TestAgent::new(|_| {});
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("precious");
    std::fs::write(&victim, "keep").unwrap();
    agent.start().await;
    // Without hostNetwork, the pod's UID used to become its netns path: an absolute UID made the
    // agent bind-mount over, and later unlink, that file.
    let pod = sh_pod("evil", "exec sleep 1001", "", "")
        .replace("  hostNetwork: true\n", "  hostNetwork: false\n");
    agent.write_manifest(
        "evil.yaml",
        &with_metadata(&pod, &format!("  uid: {}\n", victim.display())),
    );
    let problem = agent
        .wait_for("the manifest problem", T, |s| {
            s.manifest_problems
                .iter()
                .find(|p| p.path.ends_with("evil.yaml"))
                .map(|p| p.error.clone())
        })
        .await;
    assert!(problem.contains("metadata.uid"), "{problem}");
    assert!(problem.contains("is not a valid pod UID"), "{problem}");
    assert!(agent.status().pod("evil").is_none());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifos_links_to_devices_and_alias_bombs_do_not_stop_the_agent() {
    let mut agent = TestAgent::new(|_| {});
    let dir = agent.options.manifest_dir.clone();
    nix::unistd::mkfifo(
        &dir.join("fifo.yaml"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).unwrap();
    let items = vec!["x"; 5000].join(", ");
    let aliases = vec!["*a"; 5000].join(", ");
    agent.write_manifest(
        "bomb.yaml",
        &format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: bomb, labels: &a [{items}]}}\nspec: {{containers: [{{name: c}}]}}\nx: [{aliases}]\n"),
    );
    agent.write_manifest("good.yaml", &sh_pod("good", "exec sleep 1002", "", ""));
    agent.start().await;
    agent.wait_ready("good", T).await;
    let problems = agent.status().manifest_problems;
    let error = |name: &str| {
        problems
            .iter()
            .find(|p| p.path.ends_with(name))
            .map(|p| p.error.clone())
            .unwrap_or_else(|| panic!("no problem for {name}: {problems:?}"))
    };
    assert!(error("fifo.yaml").contains("is a FIFO"));
    assert!(error("zero.yaml").contains("is a symbolic link"));
    assert!(error("bomb.yaml").contains("YAML aliases"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_uid_does_not_pin_an_edited_pod() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    let pod = |arg: &str| {
        with_metadata(
            &sh_pod("pinned", &format!("exec sleep {arg}"), "", ""),
            "  uid: 0b1e0c6c-1c9f-4a4e-9d8e-5f1b7c3a2d10\n",
        )
    };
    agent.write_manifest("pinned.yaml", &pod("1003"));
    let first = agent.wait_ready("pinned", T).await;
    agent.write_manifest("pinned.yaml", &pod("1004"));
    let second = agent
        .wait_pod("pinned", T, |p| {
            p.pid().filter(|pid| *pid != first && p.healthy())
        })
        .await;
    assert!(!alive(first), "the old version was stopped");
    let cmdline = std::fs::read(format!("/proc/{second}/cmdline")).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("1004"));
    assert_eq!(
        agent.status().pod("pinned").unwrap().uid,
        "0b1e0c6c-1c9f-4a4e-9d8e-5f1b7c3a2d10"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_good_pod_survives_an_agent_restart_while_its_manifest_is_broken() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    agent.write_manifest("keep.yaml", &sh_pod("keep", "exec sleep 1005", "", ""));
    let pid = agent.wait_ready("keep", T).await;
    agent.stop().await;
    agent.write_manifest(
        "keep.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: keep\n",
    );
    agent.start().await;
    let pod = agent
        .wait_pod("keep", T, |p| p.manifest_error.is_some().then(|| p.clone()))
        .await;
    assert_eq!(pod.pid(), Some(pid), "adopted, not restarted");
    assert!(alive(pid));
    let problem = &agent.status().manifest_problems[0];
    assert_eq!(problem.kept_running.as_deref(), Some("keep-node1"));
    // Fixing the manifest with other content replaces the pod as usual.
    agent.write_manifest("keep.yaml", &sh_pod("keep", "exec sleep 1006", "", ""));
    agent
        .wait_pod("keep", T, |p| {
            p.pid().filter(|new| *new != pid && p.healthy())
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_as_non_root_with_uid_0_is_refused() {
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    agent.write_manifest(
        "rootish.yaml",
        &sh_pod(
            "rootish",
            "exec sleep 1007",
            "    securityContext: {runAsNonRoot: true, runAsUser: 0}\n",
            "",
        ),
    );
    let reason = agent
        .wait_pod("rootish", T, |p| {
            p.reason
                .clone()
                .filter(|r| r.contains("CreateContainerError"))
        })
        .await;
    assert!(
        reason.contains("breaks the runAsNonRoot policy"),
        "{reason}"
    );
    assert!(agent.status().pod("rootish").unwrap().pid().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_new_privs_read_only_mounts_and_ignored_fields() {
    if !require::root("read-only bind mounts") {
        return;
    }
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    let shared = agent.path("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let out = agent.path("out");
    let script = format!(
        "grep NoNewPrivs /proc/self/status > {out}.nnp; if touch {shared}/x 2>/dev/null; then echo writable > {out}.ro; else echo read-only > {out}.ro; fi; exec sleep 1008",
        out = out.display(),
        shared = shared.display()
    );
    let mounts = format!(
        "    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n    volumeMounts: [{{name: s, mountPath: {0}, readOnly: true}}]\n",
        shared.display()
    );
    let volumes = format!(
        "  securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}\n  volumes: [{{name: s, hostPath: {{path: {}, type: Directory}}}}]\n",
        shared.display()
    );
    agent.write_manifest("sec.yaml", &sh_pod("sec", &script, &mounts, &volumes));
    agent.wait_ready("sec", T).await;
    let read = |suffix: &str| {
        let path = format!("{}.{suffix}", out.display());
        poll_until(
            T,
            wait::EVERY,
            || {
                std::fs::read_to_string(&path)
                    .ok()
                    .filter(|t| !t.is_empty())
            },
            || format!("no {path}"),
        )
    };
    assert_eq!(read("nnp").split_whitespace().last(), Some("1"));
    assert_eq!(read("ro").trim(), "read-only");
    assert!(!shared.join("x").exists());
    let ignored = agent.status().pod("sec").unwrap().ignored_fields.clone();
    assert_eq!(
        ignored,
        [
            "spec.securityContext.seccompProfile",
            "spec.containers[main].securityContext.capabilities"
        ]
    );
}

/// Kills the process on drop, so a failing test leaves nothing running.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_records_reach_no_other_process_and_no_other_file() {
    use boot::agent::records::{save, ContainerRecord, PodRecord};
    use boot::runtime::names::{PodName, PodUid};
    use boot::runtime::{ContainerHandle, Sandbox};
    if !require::root("cgroups, network namespaces") {
        return;
    }
    let mut agent = TestAgent::new(|_| {});
    let bystander = Killed(
        std::process::Command::new("sleep")
            .arg("1010")
            .spawn()
            .unwrap(),
    );
    let pid = bystander.0.id() as i32;
    let ticks = boot::runtime::linux::proc::stat(pid).unwrap().start_ticks;
    let outside = tempfile::tempdir().unwrap();
    let fake_cgroup = outside.path().join("cgroup");
    std::fs::create_dir(&fake_cgroup).unwrap();
    std::fs::write(fake_cgroup.join("cgroup.procs"), format!("{pid}\n")).unwrap();
    let precious = outside.path().join("precious");
    std::fs::write(&precious, "keep").unwrap();
    let uid = PodUid::new("tampered").unwrap();
    let handle = |cgroups: Vec<std::path::PathBuf>| ContainerHandle {
        pid,
        start_ticks: ticks,
        started_at: std::time::SystemTime::now(),
        cgroups,
        container_id: None,
        image_id: None,
    };
    let containers = [vec![], vec![fake_cgroup.clone()]]
        .into_iter()
        .enumerate()
        .map(|(i, cgroups)| ContainerRecord {
            name: format!("c{i}"),
            init: false,
            restart_count: 0,
            process: Some(handle(cgroups)),
            completed: false,
        })
        .collect();
    // As if someone had rewritten a record of a pod whose manifest is gone: a live unrelated
    // process, a directory posing as its cgroup, a host file posing as its network namespace.
    let record = PodRecord {
        uid: uid.clone(),
        config_hash: "x".into(),
        full_name: PodName::new("gone-node1").unwrap(),
        manifest: "/nowhere".into(),
        pod: None,
        sandbox: Some(Sandbox {
            pod_uid: uid,
            netns: Some(precious.clone()),
            notes: vec![],
            pod_ip: None,
            network: None,
        }),
        containers,
    };
    save(&agent.options.records_dir(), &record).unwrap();
    agent.start().await;
    agent.write_manifest("marker.yaml", &sh_pod("marker", "exec sleep 1011", "", ""));
    agent.wait_ready("marker", T).await;
    assert!(!agent.options.records_dir().join("tampered.json").exists());
    assert!(alive(pid), "the bystander was never signalled");
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep");
    assert!(
        !fake_cgroup.join("cgroup.kill").exists(),
        "nothing written outside /sys/fs/cgroup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_logs_and_a_removed_pods_directories_are_collected() {
    let mut agent = TestAgent::new(|o| {
        o.backoff.initial = Duration::from_millis(10);
        o.backoff.max = Duration::from_millis(20);
    });
    agent.start().await;
    let volumes = "  volumes: [{name: scratch, emptyDir: {}}]\n";
    let mounts = "    volumeMounts: [{name: scratch, mountPath: /scratch-unused}]\n";
    // Without root the mount would need a bind mount; the emptyDir is created all the same.
    let mounts = if agent_support::is_root() { mounts } else { "" };
    agent.write_manifest(
        "churn.yaml",
        &sh_pod("churn", "echo run; exit 1", mounts, volumes),
    );
    let pod = agent
        .wait_pod("churn", T, |p| (p.restarts >= 4).then(|| p.clone()))
        .await;
    let log_dir = agent
        .options
        .log_dir
        .join(format!("kube-system_churn-node1_{}", pod.uid));
    let container_dir = log_dir.join("main");
    let logs = || boot::runtime::logs::files::restart_counts(&container_dir);
    // Collection runs in the background after each start: wait for it.
    let collected = || {
        let kept = logs();
        kept.len() <= 2 && kept.first().is_none_or(|n| *n + 2 >= pod.restarts)
    };
    poll_until_async(
        T,
        wait::EVERY,
        || std::future::ready(collected().then_some(())),
        || format!("logs kept: {:?}", logs()),
    )
    .await;
    assert!(!logs().is_empty());
    let empty_dir = agent.options.state_dir.join("pods").join(&pod.uid);
    assert!(empty_dir.join("volumes/scratch").is_dir());
    agent.remove_manifest("churn.yaml");
    agent
        .wait_for("the pod to go", T, |s| {
            s.pod("churn").is_none().then_some(())
        })
        .await;
    poll_until_async(
        T,
        wait::EVERY,
        || std::future::ready((!log_dir.exists() && !empty_dir.exists()).then_some(())),
        || {
            format!(
                "left behind: logs {}, emptyDir {}",
                log_dir.exists(),
                empty_dir.exists()
            )
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_directory_others_can_write_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let mut agent = TestAgent::new(|_| {});
    let dir = agent.options.manifest_dir.clone();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    agent.start().await;
    let warning = agent
        .wait_for("the warning", T, |s| {
            s.warnings
                .iter()
                .find(|w| w.contains("manifest directory"))
                .cloned()
        })
        .await;
    assert!(warning.contains("world-writable (mode 777)"), "{warning}");
    // Fixed: the warning goes at the next relist.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    agent.write_manifest("nudge.yaml", &sh_pod("nudge", "exec sleep 1016", "", ""));
    agent
        .wait_for("the warning to go", T, |s| {
            (!s.warnings.iter().any(|w| w.contains("manifest directory"))).then_some(())
        })
        .await;
}
