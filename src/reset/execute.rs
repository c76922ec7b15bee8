//! Carrying out a reset plan, step by step; a failed step is reported and the rest still runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::agent;
use super::plan::ResetPlan;
use super::remove::Beneath;
use crate::agent::records;
use crate::host::HostRoot;
use crate::runtime::process::{cgroup, netns, proc};

/// The kubelet's default grace period (`terminationGracePeriodSeconds`).
const DEFAULT_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct StepError {
    pub step: String,
    pub error: String,
}

/// Runs every step; returns what failed (empty = all done) and what was done, as lines. The
/// ledger is removed only when every step succeeded, so that a failed reset can be run again.
pub async fn execute(plan: &ResetPlan, root: &HostRoot, out: &mut Vec<String>) -> Vec<StepError> {
    let mut errors = Vec::new();
    agent::stop_agent(plan.agent.as_ref(), root, out).await;
    stop_pods(&plan.records_dir, out).await;
    agent::stop_relays(root, out).await;
    let beneath = match Beneath::open(root.prefix()) {
        Ok(beneath) => beneath,
        // No root, nothing in it to remove.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return errors,
        Err(e) => {
            errors.push(StepError {
                step: format!("open {}", root.prefix().display()),
                error: e.to_string(),
            });
            return errors;
        }
    };
    for file in &plan.files {
        match beneath.remove_file(file) {
            Ok(true) => out.push(format!("[reset] Removed {}", file.display())),
            Ok(false) => {}
            Err(e) => errors.push(StepError {
                step: format!("remove {}", file.display()),
                error: e.to_string(),
            }),
        }
    }
    for tree in &plan.trees {
        match beneath.empty_tree(tree, &plan.ledger) {
            Ok(true) => out.push(format!("[reset] Emptied {}", tree.display())),
            Ok(false) => {}
            Err(e) => errors.push(StepError {
                step: format!("empty {}", tree.display()),
                error: e.to_string(),
            }),
        }
    }
    // Directories deepest first; the ledger goes last, and only once everything else went: a
    // reset that failed somewhere runs again from the same ledger. The ledger's own directories
    // can only go after it.
    let (holding_ledger, others): (Vec<&PathBuf>, Vec<&PathBuf>) = plan
        .dirs
        .iter()
        .partition(|dir| plan.ledger.starts_with(dir));
    remove_dirs(&beneath, &others, &mut errors);
    if !errors.is_empty() {
        return errors;
    }
    if let Err(e) = beneath.remove_file(&plan.ledger) {
        errors.push(StepError {
            step: format!("remove {}", plan.ledger.display()),
            error: e.to_string(),
        });
        return errors;
    }
    remove_dirs(&beneath, &holding_ledger, &mut errors);
    errors
}

/// Removes each directory that is empty; one that is not holds something that is not boot's and
/// stays, as kubeadm leaves it.
fn remove_dirs(beneath: &Beneath, dirs: &[&PathBuf], errors: &mut Vec<StepError>) {
    for dir in dirs {
        match beneath.remove_dir(dir) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => {}
            Err(e) => errors.push(StepError {
                step: format!("remove directory {}", dir.display()),
                error: e.to_string(),
            }),
        }
    }
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
