//! The set of manifest files the agent knows and the pods they ask for, with the rules of design §5:
//! ★ a file that stops parsing keeps its last good pod (and reports the error), also across an
//! agent restart (the last good pod is remembered from the agent's records), a removed file drops
//! its pod, and two files naming the same pod or giving the same UID → the later one is refused
//! (the kubelet's `filterInvalidPods`), except that a pod already running is never displaced by a
//! newcomer.
//!
//! Pure: the directory scanning that feeds it is in [`super::dir`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::manifest::{ManifestError, StaticPod};

/// What changes when a file is edited: size, modification and change times, inode. A relist only
/// re-reads files whose fingerprint changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub len: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub ino: u64,
}

/// The agent's view of one manifest file.
#[derive(Debug, Clone)]
pub enum FileState {
    Good {
        pod: Arc<StaticPod>,
        fingerprint: Fingerprint,
    },
    /// The file does not parse or validate; `last_good` (if any) keeps running.
    Broken {
        error: ManifestError,
        last_good: Option<Arc<StaticPod>>,
        fingerprint: Fingerprint,
    },
}

impl FileState {
    fn fingerprint(&self) -> Fingerprint {
        match self {
            FileState::Good { fingerprint, .. } | FileState::Broken { fingerprint, .. } => {
                *fingerprint
            }
        }
    }

    /// The pod this file stands for now: its content, or the last good content while it is broken.
    pub fn pod(&self) -> Option<&Arc<StaticPod>> {
        match self {
            FileState::Good { pod, .. } => Some(pod),
            FileState::Broken { last_good, .. } => last_good.as_ref(),
        }
    }
}

/// A problem with one manifest file, as status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub path: PathBuf,
    pub error: String,
    /// The pod that keeps running from this file's last good version, if any.
    pub kept_running: Option<String>,
}

/// The pods the manifest directory asks for, after duplicate names are refused.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub pods: Vec<Arc<StaticPod>>,
    pub problems: Vec<FileProblem>,
}

#[derive(Debug, Clone, Default)]
pub struct ManifestSet {
    files: BTreeMap<PathBuf, FileState>,
    /// Last good pods from a previous agent's records, by manifest path: used when a file is
    /// broken the first time this agent reads it.
    remembered: BTreeMap<PathBuf, Arc<StaticPod>>,
}

impl ManifestSet {
    /// Whether `path` must be (re-)read: new, or its fingerprint changed.
    pub fn needs_read(&self, path: &Path, fingerprint: Fingerprint) -> bool {
        self.files
            .get(path)
            .is_none_or(|state| state.fingerprint() != fingerprint)
    }

    /// Remembers `pod` as the last good version of its file, for when this agent finds it broken.
    pub fn remember(&mut self, pod: Arc<StaticPod>) {
        self.remembered.insert(pod.path.clone(), pod);
    }

    /// Drops what [`Self::remember`] kept: after the first read of the directory it is stale.
    pub fn forget_remembered(&mut self) {
        self.remembered.clear();
    }

    /// Records the result of reading one file.
    pub fn apply(
        &mut self,
        path: &Path,
        fingerprint: Fingerprint,
        parsed: Result<StaticPod, ManifestError>,
    ) {
        let previous = self.files.remove(path);
        let state = match parsed {
            Ok(pod) => {
                // Keep the same Arc when nothing changed, so identity comparisons stay cheap.
                let pod = match previous.as_ref().and_then(FileState::pod) {
                    Some(old) if old.config_hash == pod.config_hash => old.clone(),
                    _ => Arc::new(pod),
                };
                self.remembered.remove(path);
                FileState::Good { pod, fingerprint }
            }
            Err(error) => {
                let last_good = match previous.as_ref().and_then(FileState::pod) {
                    Some(pod) => Some(pod.clone()),
                    None => self.remembered.remove(path),
                };
                FileState::Broken {
                    error,
                    last_good,
                    fingerprint,
                }
            }
        };
        self.files.insert(path.to_path_buf(), state);
    }

    /// Forgets every file not in `present` (removed or renamed): their pods are no longer wanted.
    pub fn retain(&mut self, present: &BTreeSet<PathBuf>) {
        self.files.retain(|path, _| present.contains(path));
    }

    pub fn files(&self) -> impl Iterator<Item = (&PathBuf, &FileState)> {
        self.files.iter()
    }

    /// The wanted pods. `running(pod)` says which pods already run: they keep their name and UID
    /// even when a file sorting earlier claims them too.
    pub fn desired(&self, running: impl Fn(&StaticPod) -> bool) -> Desired {
        let mut desired = Desired::default();
        for (path, state) in &self.files {
            if let FileState::Broken {
                error, last_good, ..
            } = state
            {
                let kept_running = last_good.as_ref().map(|p| p.full_name.to_string());
                desired.problems.push(FileProblem {
                    path: path.clone(),
                    error: error.to_string(),
                    kept_running,
                });
            }
        }
        let candidates: Vec<&Arc<StaticPod>> =
            self.files.values().filter_map(FileState::pod).collect();
        let (first, rest): (Vec<_>, Vec<_>) = candidates.into_iter().partition(|pod| running(pod));
        let mut owners: BTreeMap<&str, &Path> = BTreeMap::new();
        let mut uids: BTreeMap<&str, &Path> = BTreeMap::new();
        for pod in first.into_iter().chain(rest) {
            let taken = match (
                owners.get(pod.full_name.as_str()),
                uids.get(pod.uid.as_str()),
            ) {
                (Some(owner), _) => Some(
                    format!("pod {} is already defined by", pod.full_name)
                        + &format!(" {}", owner.display()),
                ),
                (None, Some(owner)) => Some(format!(
                    "pod UID {} is already used by {}",
                    pod.uid,
                    owner.display()
                )),
                (None, None) => None,
            };
            if let Some(taken) = taken {
                desired.problems.push(FileProblem {
                    path: pod.path.clone(),
                    error: format!("{}: {taken}; this file is ignored", pod.path.display()),
                    kept_running: None,
                });
                continue;
            }
            owners.insert(&pod.full_name, &pod.path);
            uids.insert(&pod.uid, &pod.path);
            desired.pods.push(pod.clone());
        }
        desired.problems.sort_by(|a, b| a.path.cmp(&b.path));
        desired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(path: &str, name: &str, arg: &str) -> Result<StaticPod, ManifestError> {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers: [{{name: c, command: [sleep, '{arg}']}}]\n"
        );
        StaticPod::parse(Path::new(path), text.as_bytes(), "n")
    }

    fn fp(n: u64) -> Fingerprint {
        Fingerprint {
            len: n,
            ..Fingerprint::default()
        }
    }

    fn broken(path: &str) -> Result<StaticPod, ManifestError> {
        Err(ManifestError::Parse {
            path: path.into(),
            message: "bad".into(),
        })
    }

    #[test]
    fn broken_edit_keeps_the_last_good_pod_and_reports() {
        let mut set = ManifestSet::default();
        set.apply(Path::new("/m/a"), fp(1), pod("/m/a", "a", "1"));
        let uid = set.desired(|_| false).pods[0].uid.clone();
        let remembered = set.desired(|_| false).pods[0].clone();
        assert!(set.needs_read(Path::new("/m/a"), fp(2)));
        set.apply(Path::new("/m/a"), fp(2), broken("/m/a"));
        let desired = set.desired(|_| true);
        assert_eq!(desired.pods[0].uid, uid);
        assert_eq!(desired.problems[0].kept_running.as_deref(), Some("a-n"));
        // A broken new file asks for nothing.
        set.apply(Path::new("/m/b"), fp(1), broken("/m/b"));
        assert_eq!(set.desired(|_| true).pods.len(), 1);
        // Removing the file stops the pod.
        set.retain(&BTreeSet::new());
        assert!(set.desired(|_| true).pods.is_empty());
        // A new agent that finds the file broken keeps the pod its records remember.
        let mut fresh = ManifestSet::default();
        fresh.remember(remembered);
        fresh.apply(Path::new("/m/a"), fp(2), broken("/m/a"));
        assert_eq!(fresh.desired(|_| true).pods[0].uid, uid);
    }

    #[test]
    fn a_second_file_with_the_same_uid_is_refused() {
        let mut set = ManifestSet::default();
        let with_uid = |path: &str, name: &str| {
            let text = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, uid: same}}\nspec:\n  containers: [{{name: c}}]\n");
            StaticPod::parse(Path::new(path), text.as_bytes(), "n")
        };
        set.apply(Path::new("/m/a"), fp(1), with_uid("/m/a", "a"));
        set.apply(Path::new("/m/b"), fp(1), with_uid("/m/b", "b"));
        let desired = set.desired(|_| false);
        assert_eq!(desired.pods.len(), 1);
        assert!(
            desired.problems[0]
                .error
                .contains("pod UID same is already used by /m/a"),
            "{:?}",
            desired.problems
        );
    }

    #[test]
    fn duplicate_names_refuse_the_later_file_but_never_displace_a_running_pod() {
        let mut set = ManifestSet::default();
        set.apply(Path::new("/m/b"), fp(1), pod("/m/b", "x", "1"));
        let running_uid = set.desired(|_| false).pods[0].uid.clone();
        set.apply(Path::new("/m/a"), fp(1), pod("/m/a", "x", "2"));
        let desired = set.desired(|pod| pod.uid == running_uid);
        assert_eq!(desired.pods.len(), 1);
        assert_eq!(desired.pods[0].path, Path::new("/m/b"));
        assert!(
            desired.problems[0]
                .error
                .contains("already defined by /m/b"),
            "{:?}",
            desired.problems
        );
        // Nothing running yet: sorted order decides.
        assert_eq!(set.desired(|_| false).pods[0].path, Path::new("/m/a"));
    }
}
