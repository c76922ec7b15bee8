//! The agent at rest with the API sync on, against the real control plane: its resident memory,
//! CPU and API requests per minute once the Node and the four mirror pods are in sync. A
//! measurement, not a test (ignored; prints figures, never passes or fails on them):
//!
//! ```text
//! cargo build --release --bin boot
//! BOOT_K8S_BIN=/work/k8s-bin BOOT_EXE=target/release/boot \
//!     cargo test --test node_bench -- --ignored --nocapture
//! ```
//!
//! `BOOT_EXE` is the `boot` that runs `init` (and so the agent); without it, the test build's.
//! `BOOT_BENCH_SECONDS` sets the window (default 120 s).

#[path = "common/cluster.rs"]
mod cluster;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{text, Cluster, Components, IGNORE};
use serde_json::Value;

fn status(exe: &PathBuf, cluster: &Cluster) -> Value {
    let out = Command::new(exe)
        .args(["status", "-o", "json", "--root"])
        .arg(cluster.root())
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// `VmRSS`, `RssAnon`, `RssFile` (KiB) and `Threads` from `/proc/<pid>/status`.
fn memory(pid: u64) -> Vec<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(':')?;
            if !["VmRSS", "RssAnon", "RssFile", "Threads"].contains(&key) {
                return None;
            }
            let value = value.split_whitespace().next()?.parse().ok()?;
            Some((key.to_string(), value))
        })
        .collect()
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u64) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat; `after` starts at field 3.
    fields
        .get(11)
        .and_then(|f| f.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
}

#[test]
#[ignore = "a measurement, not a test"]
fn agent_at_rest_with_the_api_sync_on() {
    let Some(components) = cluster::real_components() else {
        return;
    };
    if !cluster::have_etcd() {
        return;
    }
    let exe = std::env::var_os("BOOT_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(cluster::BOOT));
    let window = Duration::from_secs(
        std::env::var("BOOT_BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(120),
    );
    let cluster = Cluster::with(Components::Real(&components), "3m0s");
    let init = Command::new(&exe)
        .arg("init")
        .arg("--root")
        .arg(cluster.root())
        .arg("--config")
        .arg(cluster.dir.path().join("config.yaml"))
        .arg(IGNORE)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init));
    let last = std::cell::RefCell::new(Value::Null);
    let pid = cluster::poll_until(
        Duration::from_secs(180),
        Duration::from_millis(500),
        || {
            let status = status(&exe, &cluster);
            let api = &status["api"];
            let synced = api["nodeRegistered"] == true
                && api["mirrorPods"] == 4
                && api["lastError"].is_null();
            let pid = synced.then(|| status["agentPid"].as_u64().unwrap());
            *last.borrow_mut() = status;
            pid
        },
        || format!("never in sync: {}", last.borrow()),
    );
    // Let start-up settle (the Started events, the first status posts), then measure.
    std::thread::sleep(Duration::from_secs(20));
    let requests = |s: &Value| s["api"]["requests"].as_u64().unwrap_or(0);
    // SAFETY: sysconf reads a constant.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let (cpu_before, requests_before, started) = (
        cpu_ticks(pid),
        requests(&status(&exe, &cluster)),
        Instant::now(),
    );
    std::thread::sleep(window);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (cpu_ticks(pid) - cpu_before) as f64 / ticks_per_second;
    // `boot status` itself is not counted: it asks the agent's socket, not the API server.
    let made = requests(&status(&exe, &cluster)) - requests_before;
    let memory = memory(pid);
    eprintln!(
        "agent {} at rest with the API sync on, over {elapsed:.0} s:",
        exe.display()
    );
    for (key, value) in &memory {
        let unit = if key == "Threads" { "" } else { " KiB" };
        eprintln!("  {key}: {value}{unit}");
    }
    eprintln!(
        "  CPU: {:.3} % of one core ({cpu:.2} s)",
        100.0 * cpu / elapsed
    );
    eprintln!(
        "  API requests: {made} ({:.1} per minute)",
        made as f64 * 60.0 / elapsed
    );
}
