//! Carrying out a reset plan, step by step; a failed step is reported and the rest still runs.

use std::path::{Path, PathBuf};

use super::agent;
use super::plan::ResetPlan;
use super::remove::Beneath;
use crate::agent::records;
use crate::host::HostRoot;
use crate::runtime::{self, Runtime, RuntimeKind, RuntimeSettings};

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
    // The runtime the agent used, over the same directories: reset asks it to stop and remove
    // what it made, as the kubelet only speaks CRI.
    let settings = RuntimeSettings {
        network: Some(plan.network.clone()),
        ..RuntimeSettings::for_root(root, "reset")
    };
    let runtime = runtime::open(RuntimeKind::found(&settings), &settings, None);
    let sandboxes = stop_pods(runtime.as_ref(), &plan.records_dir, out).await;
    let teardown = runtime.remove_all(&sandboxes);
    out.extend(teardown.done);
    for error in teardown.failed {
        errors.push(StepError {
            step: "delete the pod network".into(),
            error,
        });
    }
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
    remove_staged(&beneath, &plan.files, out, &mut errors);
    let keep: Vec<&Path> = std::iter::once(plan.ledger.as_path())
        .chain(plan.kept.iter().map(PathBuf::as_path))
        .collect();
    for tree in &plan.trees {
        match beneath.empty_tree(tree, &keep) {
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

/// Removes the temporary files an interrupted atomic write of a ledger file left beside it
/// (`.NAME.XXXXXX.boot-tmp`, `crate::host::fs`): a killed init or join leaves them.
fn remove_staged(
    beneath: &Beneath,
    files: &[PathBuf],
    out: &mut Vec<String>,
    errors: &mut Vec<StepError>,
) {
    let mut dirs: Vec<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.sort_unstable();
    dirs.dedup();
    for dir in dirs {
        // Names only; the removal itself goes through `beneath`, never through a symlink.
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for name in entries.flatten().map(|e| e.file_name()) {
            let name = name.to_string_lossy();
            let staged = files.iter().any(|f| {
                f.parent() == Some(dir)
                    && f.file_name().is_some_and(|own| {
                        name.starts_with(&format!(".{}.", own.to_string_lossy()))
                            && name.ends_with(".boot-tmp")
                    })
            });
            if !staged {
                continue;
            }
            let path = dir.join(&*name);
            match beneath.remove_file(&path) {
                Ok(true) => out.push(format!("[reset] Removed {}", path.display())),
                Ok(false) => {}
                Err(e) => errors.push(StepError {
                    step: format!("remove {}", path.display()),
                    error: e.to_string(),
                }),
            }
        }
    }
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

/// Every recorded container through the runtime: stopped (SIGTERM, the pod's grace period,
/// SIGKILL) and removed (its cgroups). Returns the recorded sandboxes, for removal once the pod
/// network is deleted.
async fn stop_pods(
    runtime: &dyn Runtime,
    records_dir: &Path,
    out: &mut Vec<String>,
) -> Vec<crate::runtime::Sandbox> {
    let (pods, _) = records::load_all(records_dir);
    let mut stops = Vec::new();
    for pod in &pods {
        let grace = crate::agent::pod::termination_grace_period(
            pod.pod.as_ref().and_then(|p| p.spec.as_ref()),
        );
        for container in &pod.containers {
            let Some(handle) = container.process.as_ref() else {
                continue;
            };
            let name = format!("{}/{}", pod.full_name, container.name);
            let stop = runtime.stop_container(handle, grace);
            let remove = runtime.cleanup_container(handle);
            stops.push(tokio::spawn(async move {
                stop.await;
                remove.await;
                name
            }));
        }
    }
    for stop in stops {
        if let Ok(name) = stop.await {
            out.push(format!("[reset] Stopped {name}"));
        }
    }
    pods.into_iter().filter_map(|p| p.sandbox).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_leftovers_of_listed_files_go_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("etc/kubernetes/manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        let listed = manifests.join("kube-apiserver.yaml");
        let staged = manifests.join(".kube-apiserver.yaml.Ab12Cd.boot-tmp");
        let other = manifests.join(".someone-elses.yaml.Ab12Cd.boot-tmp");
        let unrelated = manifests.join(".kube-apiserver.yaml.swp");
        for path in [&staged, &other, &unrelated] {
            std::fs::write(path, "x").unwrap();
        }
        let beneath = Beneath::open(dir.path()).unwrap();
        let (mut out, mut errors) = (Vec::new(), Vec::new());
        remove_staged(&beneath, &[listed], &mut out, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(!staged.exists());
        assert!(other.exists() && unrelated.exists());
        assert_eq!(out.len(), 1, "{out:?}");
    }
}
