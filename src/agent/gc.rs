//! Garbage collection of what pods leave on disk, as the kubelet's container GC does: a
//! container's logs are kept for its current and its previous instance (`kubectl logs
//! --previous`), older ones are removed when a new instance starts; a pod's log directory goes
//! with the pod (its emptyDirs go with its sandbox, in the runtime). Runs on blocking threads: a
//! slow disk must not hold the supervisor.
//!
//! Touches: `<root>/var/log/pods/<namespace>_<pod>_<uid>/` (only names built from validated
//! identifiers; symlinks are removed, never followed).

use std::fs;
use std::path::{Path, PathBuf};

use crate::runtime::logs::files::{container_log_path, restart_counts, rotated_files};

/// Removes the logs (and their rotated files) of instances before `restart_count - 1`.
pub fn remove_old_logs(container_dir: &Path, restart_count: u32) {
    let keep_from = restart_count.saturating_sub(1);
    let pod_dir = container_dir.parent().unwrap_or(container_dir);
    let name = container_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for old in restart_counts(container_dir)
        .into_iter()
        .filter(|n| *n < keep_from)
    {
        let log = container_log_path(pod_dir, &name, old);
        for file in rotated_files(&log).into_iter().chain([log]) {
            let _ = fs::remove_file(file);
        }
    }
}

/// Tries at removing a pod's log directory, and the pause between them.
const REMOVE_ATTEMPTS: u32 = 5;
const REMOVE_PAUSE: std::time::Duration = std::time::Duration::from_millis(400);

/// Removes a pod's whole log directory. The log relay of the pod's last container may still add a
/// file while the directory goes, and the removal then fails (ENOTEMPTY): it is tried again after
/// a pause, a few times.
pub fn remove_pod_logs(pod_log_dir: &Path) {
    for attempt in 0..REMOVE_ATTEMPTS {
        let Ok(meta) = fs::symlink_metadata(pod_log_dir) else {
            return;
        };
        if attempt > 0 {
            std::thread::sleep(REMOVE_PAUSE);
        }
        let removed = match meta.is_dir() {
            true => fs::remove_dir_all(pod_log_dir),
            false => fs::remove_file(pod_log_dir),
        };
        if removed.is_ok() {
            return;
        }
    }
}

/// Runs `work` on a blocking thread (or right here outside a tokio runtime).
pub fn in_background(work: impl FnOnce() + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn_blocking(work);
        }
        Err(_) => work(),
    }
}

/// The log directories under `log_dir` of the pod `<full_name>` with `uid`, whatever its
/// namespace (a record of an old agent may not know it).
pub fn pod_log_dirs(log_dir: &Path, full_name: &str, uid: &str) -> Vec<PathBuf> {
    let suffix = format!("_{full_name}_{uid}");
    fs::read_dir(log_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
        .map(|e| e.path())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_current_and_previous_instance() {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("pod").join("c");
        fs::create_dir_all(&c).unwrap();
        for n in 0..5 {
            fs::write(c.join(format!("{n}.log")), "x").unwrap();
        }
        fs::write(c.join("1.log.20260101-000000"), "x").unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, "keep").unwrap();
        std::os::unix::fs::symlink(&outside, c.join("2.log.20260101-000000")).unwrap();
        remove_old_logs(&c, 4);
        assert_eq!(restart_counts(&c), [3, 4]);
        let left: Vec<String> = fs::read_dir(&c)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert_eq!(fs::read_to_string(&outside).unwrap(), "keep");
        remove_pod_logs(&dir.path().join("pod"));
        assert!(!dir.path().join("pod").exists());
        assert!(outside.exists());
    }

    #[test]
    fn finds_a_pods_log_directories_by_name_and_uid() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("kube-system_etcd-n_u1")).unwrap();
        fs::create_dir(dir.path().join("kube-system_etcd-n_u2")).unwrap();
        assert_eq!(
            pod_log_dirs(dir.path(), "etcd-n", "u1"),
            [dir.path().join("kube-system_etcd-n_u1")]
        );
    }
}
