//! Helpers for the agent's integration tests: an agent started in-process over a temporary root
//! (stopped, and every process it started killed, in `Drop` even when the test fails), manifest
//! writes, status polling with deadlines, and `/proc` checks.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use boot::agent::records::load_all;
use boot::agent::status::{self, AgentStatus, PodStatus};
use boot::agent::{AgentOptions, BackoffSettings};
use boot::host::HostRoot;
use boot::runtime::linux::{cgroup, netns, proc};
use boot::runtime::network::{cleanup, NetworkSettings};

#[path = "ports.rs"]
mod ports;
#[path = "standin_exe.rs"]
mod standin_exe;
// A test crate may include two support modules that both bring `wait`: two copies, no harm.
#[allow(clippy::duplicate_mod)]
#[path = "wait.rs"]
pub mod wait;
#[allow(unused_imports)] // each test crate uses a different part
pub use ports::{free_port, free_ports};
#[allow(unused_imports)]
pub use standin_exe::standin_exe;
#[allow(unused_imports)]
pub use wait::{poll_until, poll_until_async, wait_for, wait_for_async};

pub const NODE: &str = "node1";

/// An agent running in this test process.
pub struct TestAgent {
    pub dir: tempfile::TempDir,
    pub root: HostRoot,
    pub options: AgentOptions,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), boot::agent::AgentError>>>,
}

/// Options over a fresh temporary root: no TCP endpoint, quick relists, millisecond back-off.
pub fn test_options(dir: &Path) -> AgentOptions {
    let root = HostRoot::under(dir).unwrap();
    let mut options = AgentOptions::new(root, NODE);
    options.status_addr = None;
    options.relist_period = Duration::from_millis(500);
    options.backoff = BackoffSettings {
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
        reset_after: Duration::from_secs(600),
    };
    options.relay_exe = PathBuf::from(env!("CARGO_BIN_EXE_boot"));
    options.runtime = boot::config::RuntimeKind::Process;
    options.bin_dirs = vec![standin_exe().parent().unwrap().to_path_buf()];
    options.cgroup_parent = format!("boot-test-{}", std::process::id());
    // Loopback-only pod namespaces: tests that run in parallel must not share boot's default
    // bridge and range (tests/network.rs gives each test its own).
    options.pod_network = None;
    options
}

impl TestAgent {
    pub fn new(configure: impl FnOnce(&mut AgentOptions)) -> TestAgent {
        let dir = tempfile::tempdir().unwrap();
        let mut options = test_options(dir.path());
        configure(&mut options);
        std::fs::create_dir_all(&options.manifest_dir).unwrap();
        TestAgent {
            root: options.root.clone(),
            dir,
            options,
            shutdown: None,
            task: None,
        }
    }

    /// Starts (or restarts) the agent in this process and waits for its socket.
    pub async fn start(&mut self) {
        let runtime = boot::runtime::open(
            boot::runtime::RuntimeKind::Process,
            &self.options.runtime_settings(),
            None,
        );
        self.start_with_runtime(runtime).await;
    }

    /// [`Self::start`] with another runtime (a wrapper that injects faults).
    pub async fn start_with_runtime(
        &mut self,
        runtime: std::sync::Arc<dyn boot::runtime::Runtime>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let options = self.options.clone();
        self.task = Some(tokio::spawn(boot::agent::run_with_runtime(
            options,
            runtime,
            async {
                let _ = rx.await;
            },
        )));
        self.shutdown = Some(tx);
        let socket = &self.options.status_socket;
        let limit = Duration::from_secs(10);
        poll_until_async(
            limit,
            wait::EVERY,
            || async move { status::fetch(socket).await.ok() },
            || format!("timed out after {limit:?} waiting for the agent's status socket"),
        )
        .await;
    }

    /// Stops the in-process agent (pods keep running unless stop_pods_on_exit).
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(40), task)
                .await
                .expect("agent stops")
                .unwrap()
                .unwrap();
        }
    }

    pub fn manifest(&self, name: &str) -> PathBuf {
        self.options.manifest_dir.join(name)
    }

    /// Writes a manifest atomically (through a dotfile, which the agent ignores).
    pub fn write_manifest(&self, name: &str, yaml: &str) {
        let tmp = self.options.manifest_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.manifest(name)).unwrap();
    }

    pub fn remove_manifest(&self, name: &str) {
        std::fs::remove_file(self.manifest(name)).unwrap();
    }

    /// A scratch path under the root for test files.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn status(&self) -> AgentStatus {
        status::fetch_blocking(&self.options.status_socket).expect("agent status")
    }

    /// Polls the status until `check` returns `Some`; on timeout the panic shows the last status.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&AgentStatus) -> Option<T>,
    ) -> T {
        let socket = &self.options.status_socket;
        let last = std::cell::RefCell::new(None);
        let (check, seen) = (&check, &last);
        poll_until_async(
            timeout,
            Duration::from_millis(50),
            || async move {
                let status = status::fetch(socket).await.ok()?;
                let found = check(&status);
                *seen.borrow_mut() = Some(status);
                found
            },
            || {
                format!(
                    "timed out waiting for {what}; last status: {}",
                    serde_json::to_string_pretty(&*last.borrow()).unwrap()
                )
            },
        )
        .await
    }

    /// Waits for the pod `<name>-node1` to satisfy `check`.
    pub async fn wait_pod<T>(
        &self,
        name: &str,
        timeout: Duration,
        check: impl Fn(&PodStatus) -> Option<T>,
    ) -> T {
        let full = format!("{name}-{}", self.options.node_name);
        self.wait_for(&format!("pod {full}"), timeout, |s| {
            s.pods.iter().find(|p| p.name == full).and_then(&check)
        })
        .await
    }

    /// Waits until the pod runs and is ready; returns its pid.
    pub async fn wait_ready(&self, name: &str, timeout: Duration) -> i32 {
        self.wait_pod(name, timeout, |p| if p.healthy() { p.pid() } else { None })
            .await
    }

    /// Kills every process the agent recorded (group and cgroup) and removes its namespaces.
    pub fn kill_everything(&self) {
        let (records, _) = load_all(&self.options.records_dir());
        let mut cgroups = Vec::new();
        for record in records {
            for container in record.containers {
                if let Some(handle) = container.process {
                    if proc::is_same_live_process(handle.pid, handle.start_ticks) {
                        let _ = nix::sys::signal::killpg(
                            nix::unistd::Pid::from_raw(handle.pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                    for dir in &handle.cgroups {
                        cgroup::kill_all(dir);
                    }
                    cgroups.extend(handle.cgroups);
                }
            }
        }
        // Killed processes leave their cgroups once reaped.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !cgroup::remove(&cgroups) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for dir in &cgroups {
            if let Some(parent) = dir.parent().and_then(Path::parent) {
                let _ = std::fs::remove_dir(parent); // the test's parent, once no other test uses it
            }
        }
        // CNI DEL of every attachment cached under this root (a `boot agent` the test ran uses
        // boot's default network), while the namespaces still exist.
        let _ = cleanup::teardown(&NetworkSettings::for_root(&self.root));
        if let Some(network) = &self.options.pod_network {
            let _ = cleanup::teardown(network);
        }
        for entry in std::fs::read_dir(&self.options.netns_dir)
            .into_iter()
            .flatten()
            .flatten()
        {
            netns::remove(&entry.path());
        }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            // Let the agent stop first (it runs on the runtime's worker threads), so that it
            // cannot restart what is killed below.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !task.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            task.abort();
        }
        self.kill_everything();
    }
}

/// Whether a live (non-zombie) process has this pid.
pub fn alive(pid: i32) -> bool {
    proc::stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// The parent of `pid`, from `/proc/<pid>/stat` (the field after the state).
fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, after_comm) = stat.rsplit_once(')')?;
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

/// The environment variable that marks a container as this test process's when its agent runs
/// as a process of its own and may have died (see [`owner_env`]).
pub const OWNER_ENV: &str = "BOOT_TEST_OWNER";

/// Container YAML (`container_extra` of [`sh_pod`]) that marks the container as this test's.
pub fn owner_env() -> String {
    format!(
        "    env: [{{name: {OWNER_ENV}, value: '{}'}}]\n",
        std::process::id()
    )
}

/// Whether `pid` is this test's: a descendant of this process (an in-process agent started it),
/// or marked with [`owner_env`]. Other test processes on the machine run the same commands.
fn belongs_to_this_test(pid: i32) -> bool {
    let marker = format!("{OWNER_ENV}={}", std::process::id());
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    environ
        .split(|b| *b == 0)
        .any(|var| var == marker.as_bytes())
        || descends_from_this_test(pid)
}

fn descends_from_this_test(pid: i32) -> bool {
    let me = std::process::id() as i32;
    let mut current = pid;
    for _ in 0..64 {
        match parent_of(current) {
            Some(parent) if parent == me => return true,
            Some(parent) if parent > 1 => current = parent,
            _ => return false,
        }
    }
    false
}

/// Live processes of this test whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) && alive(pid) && belongs_to_this_test(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Live processes in process group `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if proc::stat(pid).is_some_and(|s| s.pgrp == pgid && s.state != 'Z') {
            pids.push(pid);
        }
    }
    pids
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A pod manifest with one container running `sh -c SCRIPT`, and extra container/pod YAML.
pub fn sh_pod(name: &str, script: &str, container_extra: &str, spec_extra: &str) -> String {
    let script = script.replace('\'', "''");
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: kube-system\nspec:\n  hostNetwork: true\n{spec_extra}  containers:\n  - name: main\n    image: busybox\n    command: [sh, -c, '{script}']\n{container_extra}"
    )
}
