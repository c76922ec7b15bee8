//! Carrying out a reset plan, step by step; a failed step is reported and the rest still runs.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::plan::ResetPlan;
use crate::agent::records;
use crate::host::ledger::AgentLaunch;
use crate::host::HostRoot;
use crate::runtime::process::{cgroup, netns, proc};

/// The kubelet's default grace period (`terminationGracePeriodSeconds`).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);
/// How long the agent gets to stop on SIGTERM before SIGKILL.
const AGENT_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct StepError {
    pub step: String,
    pub error: String,
}

/// Runs every step; returns what failed (empty = all done) and what was done, as lines.
pub async fn execute(plan: &ResetPlan, root: &HostRoot, out: &mut Vec<String>) -> Vec<StepError> {
    let mut errors = Vec::new();
    let mut fail = |step: String, error: String| errors.push(StepError { step, error });
    if let Err(e) = stop_agent(plan.agent.as_ref(), root, out).await {
        fail("stop the agent".into(), e.to_string());
    }
    stop_pods(&plan.records_dir, out).await;
    for file in &plan.files {
        match remove_owned(root, file) {
            Ok(true) => out.push(format!("[reset] Removed {}", file.display())),
            Ok(false) => {}
            Err(e) => fail(format!("remove {}", file.display()), e.to_string()),
        }
    }
    let keep: Vec<&Path> = std::iter::once(plan.ledger.as_path())
        .chain(plan.kept.iter().map(PathBuf::as_path))
        .collect();
    for tree in &plan.trees {
        match empty_tree(root, tree, &keep) {
            Ok(true) => out.push(format!("[reset] Emptied {}", tree.display())),
            Ok(false) => {}
            Err(e) => fail(format!("empty {}", tree.display()), e.to_string()),
        }
    }
    // The ledger goes last, so an interrupted reset can be run again.
    if let Err(e) = remove_owned(root, &plan.ledger) {
        fail(format!("remove {}", plan.ledger.display()), e.to_string());
    }
    for dir in &plan.dirs {
        match std::fs::remove_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => fail(format!("remove directory {}", dir.display()), e.to_string()),
        }
    }
    errors
}

async fn stop_agent(
    launch: Option<&AgentLaunch>,
    root: &HostRoot,
    out: &mut Vec<String>,
) -> io::Result<()> {
    if let Some(AgentLaunch::Systemd { unit, .. }) = launch {
        let _ = std::process::Command::new("systemctl")
            .args(["disable", "--now", unit.as_str()])
            .status();
        let _ = std::process::Command::new("systemctl")
            .arg("daemon-reload")
            .status();
        out.push(format!("[reset] Stopped and disabled {unit}"));
    }
    // A detached agent (or one whose launch is unknown): the pid file, checked against the process.
    let pid_file = root.path("/run/boot/agent.pid");
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return Ok(());
    };
    if !is_boot_agent(pid) {
        return Ok(());
    }
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = tokio::time::Instant::now() + AGENT_GRACE;
    while is_boot_agent(pid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if is_boot_agent(pid) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    out.push(format!("[reset] Stopped the agent (pid {pid})"));
    Ok(())
}

/// A pid file's pid is only signalled when it is still a `boot agent` (pids get reused).
fn is_boot_agent(pid: i32) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let alive_not_zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| !s.contains(") Z "))
        .unwrap_or(false);
    alive_not_zombie && args.get(1) == Some(&&b"agent"[..])
}

/// Every recorded container: SIGTERM to its group, the grace period, SIGKILL, then its cgroups
/// and its pod's network namespace.
async fn stop_pods(records_dir: &Path, out: &mut Vec<String>) {
    let (pods, _) = records::load_all(records_dir);
    let mut stops = Vec::new();
    for pod in &pods {
        let grace = grace_period(&pod.manifest);
        for container in &pod.containers {
            let Some(handle) = container.process.clone() else {
                continue;
            };
            let name = format!("{}/{}", pod.full_name, container.name);
            stops.push(async move {
                if proc::is_same_live_process(handle.pid, handle.start_ticks) {
                    crate::runtime::process::stop_process_group(&handle, grace).await;
                }
                for dir in &handle.cgroups {
                    cgroup::kill_all(dir);
                }
                let mut removed = handle.cgroups.is_empty();
                for _ in 0..100 {
                    if cgroup::remove(&handle.cgroups) {
                        removed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (name, removed)
            });
        }
    }
    let mut handles = Vec::new();
    for stop in stops {
        handles.push(tokio::spawn(stop));
    }
    for handle in handles {
        if let Ok((name, _)) = handle.await {
            out.push(format!("[reset] Stopped {name}"));
        }
    }
    for pod in &pods {
        if let Some(path) = pod.sandbox.as_ref().and_then(|s| s.netns.as_ref()) {
            netns::remove(path);
        }
    }
    // The agent's parent cgroups (`…/boot`): removed once empty; another agent's pods keep them.
    let parents: std::collections::BTreeSet<PathBuf> = pods
        .iter()
        .flat_map(|p| p.containers.iter())
        .filter_map(|c| c.process.as_ref())
        .flat_map(|h| {
            h.cgroups
                .iter()
                .filter_map(|c| c.parent().map(Path::to_path_buf))
        })
        .collect();
    for parent in parents {
        let _ = std::fs::remove_dir(parent);
    }
}

/// The pod's `terminationGracePeriodSeconds` while its manifest is still there, else 30s.
fn grace_period(manifest: &Path) -> Duration {
    let pod: Option<k8s_openapi::api::core::v1::Pod> = std::fs::read(manifest)
        .ok()
        .and_then(|b| serde_yaml::from_slice(&b).ok());
    pod.and_then(|p| p.spec?.termination_grace_period_seconds)
        .map(|s| Duration::from_secs(s.max(2) as u64))
        .unwrap_or(DEFAULT_GRACE)
}

/// True when `path` lies under the root and no directory on the way there is a symlink: reset
/// then never reaches outside what it owns.
fn owned(root: &HostRoot, path: &Path) -> bool {
    if !path.starts_with(root.prefix()) {
        return false;
    }
    let mut current = PathBuf::from(root.prefix());
    let rest = path.strip_prefix(root.prefix()).unwrap_or(path);
    let parents: Vec<_> = rest
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for component in parents {
        current.push(component);
        match current.symlink_metadata() {
            Ok(meta) if meta.file_type().is_symlink() => return false,
            _ => {}
        }
    }
    true
}

/// Removes a file (a symlink itself, never its target). `Ok(false)` when it was not there.
fn remove_owned(root: &HostRoot, path: &Path) -> io::Result<bool> {
    if !owned(root, path) {
        return Err(io::Error::other(
            "a directory on the way is a symlink; not following it",
        ));
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes everything inside `tree` except what `keep` lists (the ledger, a kept image store);
/// symlinks are removed, not followed.
fn empty_tree(root: &HostRoot, tree: &Path, keep: &[&Path]) -> io::Result<bool> {
    if !owned(root, tree)
        || tree
            .symlink_metadata()
            .map(|m| m.file_type().is_symlink())
            .unwrap_or(false)
    {
        return Err(io::Error::other(
            "it is (or lies behind) a symlink; not following it",
        ));
    }
    let entries = match std::fs::read_dir(tree) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut removed = false;
    for entry in entries {
        let path = entry?.path();
        if keep.iter().any(|k| k.starts_with(&path)) {
            if !keep.contains(&path.as_path()) && path.is_dir() {
                removed |= empty_tree(root, &path, keep)?;
            }
            continue;
        }
        let meta = path.symlink_metadata()?;
        if meta.is_dir() {
            // remove_dir_all removes symlinks inside without following them.
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
        removed = true;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_removed_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path().join("root")).unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("precious"), "keep").unwrap();
        let tree = root.path("/var/lib/etcd");
        std::fs::create_dir_all(&tree).unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("link")).unwrap();
        std::fs::write(tree.join("member"), "x").unwrap();
        assert!(empty_tree(&root, &tree, &[Path::new("/none")]).unwrap());
        assert!(outside.join("precious").exists());
        assert_eq!(std::fs::read_dir(&tree).unwrap().count(), 0);
        // A file behind a symlinked directory is refused.
        std::os::unix::fs::symlink(&outside, root.path("/etc")).unwrap();
        assert!(remove_owned(&root, &root.path("/etc/precious")).is_err());
        assert!(outside.join("precious").exists());
    }
}
