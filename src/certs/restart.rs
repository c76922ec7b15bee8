//! Which static pods use a renewed file, and how one is made to restart.
//!
//! A pod uses a file when its containers' command, args or env name the file's path, or a
//! hostPath volume is that very file (a kubeconfig mounted alone). A directory mount of the whole
//! certificate directory does not count by itself: the controller manager mounts `pki/` but never
//! reads `apiserver.crt`, so renewing the API server's certificate must not restart it.
//!
//! A pod restarts the way the kubelet restarts a static pod: its manifest changes. The annotation
//! [`RENEWED_ANNOTATION`] records when its certificates were renewed, so the new manifest is a new
//! pod for boot's agent and for a kubelet alike, and nothing else in it changes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::agent::status::{self, AgentStatus};
use crate::host::{self, RenderedFile};

pub const RENEWED_ANNOTATION: &str = "boot/certificates-renewed-at";

/// The control-plane order in which affected pods are restarted: etcd first, so the API server
/// comes back to a healthy store.
const ORDER: [&str; 4] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// The manifests (path and pod name) among `manifests` that use any of `files`, in restart order.
/// Unreadable manifests are skipped: they run nothing boot could restart.
pub fn affected_pods(manifests: &[(PathBuf, Pod)], files: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let mut affected: Vec<(PathBuf, String)> = manifests
        .iter()
        .filter(|(_, pod)| uses_any(pod, files))
        .map(|(path, pod)| (path.clone(), pod.metadata.name.clone().unwrap_or_default()))
        .collect();
    let rank = |name: &str| ORDER.iter().position(|o| *o == name).unwrap_or(ORDER.len());
    affected.sort_by(|a, b| rank(&a.1).cmp(&rank(&b.1)).then(a.1.cmp(&b.1)));
    affected
}

fn uses_any(pod: &Pod, files: &[PathBuf]) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let mut words = spec.containers.iter().flat_map(|c| {
        c.command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .chain(c.env.iter().flatten().filter_map(|e| e.value.as_ref()))
    });
    let named = words.any(|word| files.iter().any(|f| mentions(word, f)));
    let mounted = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.host_path.as_ref())
        .any(|hp| files.iter().any(|f| Path::new(&hp.path) == f));
    named || mounted
}

/// `--tls-cert-file=/etc/kubernetes/pki/apiserver.crt` mentions that path; `apiserver.crt.old`
/// does not.
fn mentions(word: &str, file: &Path) -> bool {
    let file = file.to_string_lossy();
    word.match_indices(file.as_ref()).any(|(at, _)| {
        let end = at + file.len();
        word[end..]
            .chars()
            .next()
            .is_none_or(|c| c == ',' || c == ' ' || c == ':')
    })
}

/// Rewrites the manifest at `path` with [`RENEWED_ANNOTATION`] set to `stamp` (atomically, 0600).
pub fn mark_renewed(path: &Path, stamp: &str) -> Result<(), String> {
    mark(path, RENEWED_ANNOTATION, stamp)
}

/// Rewrites the manifest at `path` with `annotation` set to `stamp` (atomically, 0600).
fn mark(path: &Path, annotation: &str, stamp: &str) -> Result<(), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut doc: serde_yaml::Value =
        serde_yaml::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let metadata = doc
        .get_mut("metadata")
        .and_then(|m| m.as_mapping_mut())
        .ok_or_else(|| format!("{}: no metadata", path.display()))?;
    let annotations = metadata
        .entry("annotations".into())
        .or_insert_with(|| serde_yaml::Mapping::new().into());
    let annotations = annotations
        .as_mapping_mut()
        .ok_or_else(|| format!("{}: metadata.annotations is not a map", path.display()))?;
    annotations.insert(annotation.into(), stamp.into());
    let text = serde_yaml::to_string(&doc).map_err(|e| e.to_string())?;
    host::write_all(&[RenderedFile::new(path, 0o600, text)]).map_err(|e| e.to_string())
}

/// Longest manifest read when looking for the pods that use a renewed file (the agent's limit).
const MAX_MANIFEST: u64 = 10 * 1024 * 1024;
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum RestartError {
    #[error("cannot restart {pod}: {reason}")]
    Manifest { pod: String, reason: String },
    #[error("{pod} did not become ready again after its restart: {reason}")]
    NotReady { pod: String, reason: String },
}

/// Every regular `*.yaml`/`*.yml`/`*.json` file of the manifest directory that parses as a Pod.
pub fn read_manifests(dir: &Path) -> Vec<(PathBuf, Pod)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut pods: Vec<(PathBuf, Pod)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .filter(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() <= MAX_MANIFEST)
        })
        .filter_map(|p| {
            let pod = serde_yaml::from_slice(&std::fs::read(&p).ok()?).ok()?;
            Some((p, pod))
        })
        .collect();
    pods.sort_by(|a, b| a.0.cmp(&b.0));
    pods
}

/// Marks each manifest in turn and waits until the agent answering on `socket` runs a new, ready
/// pod for it before the next. Without an agent the manifests are only marked.
pub fn rolling_restart(
    socket: &Path,
    affected: &[(PathBuf, String)],
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(), RestartError> {
    rolling_restart_marked(socket, affected, timeout, RENEWED_ANNOTATION, progress)
}

/// [`rolling_restart`] with another annotation saying why (an encryption key rotation sets
/// `boot/encryption-config-loaded-at`).
pub fn rolling_restart_marked(
    socket: &Path,
    affected: &[(PathBuf, String)],
    timeout: Duration,
    annotation: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<(), RestartError> {
    let stamp = crate::pki::format_time(super::unix(std::time::SystemTime::now()));
    for (manifest, name) in affected {
        let before = status::fetch_blocking(socket).ok();
        let old_uid = before
            .as_ref()
            .and_then(|s| pod_of(s, manifest))
            .map(|p| p.uid.clone());
        mark(manifest, annotation, &stamp).map_err(|reason| RestartError::Manifest {
            pod: name.clone(),
            reason,
        })?;
        if before.is_none() {
            progress(&format!(
                "{name}: the agent is not running; its manifest is updated and it starts with \
                 the new certificates when the agent does"
            ));
            continue;
        }
        progress(&format!("Restarting {name} …"));
        let started = Instant::now();
        wait_ready_again(socket, manifest, old_uid.as_deref(), timeout).map_err(|reason| {
            RestartError::NotReady {
                pod: name.clone(),
                reason,
            }
        })?;
        progress(&format!(
            "{name} is ready again after {:.1}s",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

fn pod_of<'a>(status: &'a AgentStatus, manifest: &Path) -> Option<&'a status::PodStatus> {
    status
        .pods
        .iter()
        .find(|p| p.manifest == manifest && !p.terminating)
}

fn wait_ready_again(
    socket: &Path,
    manifest: &Path,
    old_uid: Option<&str>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("the agent has not picked up the change yet");
    while Instant::now() < deadline {
        match status::fetch_blocking(socket) {
            Ok(status) => match pod_of(&status, manifest) {
                Some(pod) if Some(pod.uid.as_str()) != old_uid && pod.ready => return Ok(()),
                Some(pod) if Some(pod.uid.as_str()) != old_uid => {
                    last = pod
                        .reason
                        .clone()
                        .unwrap_or_else(|| "started, not ready yet".into());
                }
                _ => {}
            },
            Err(e) => last = format!("the agent did not answer: {e}"),
        }
        std::thread::sleep(POLL);
    }
    Err(format!("{last} (after {}s)", timeout.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, command: &[&str], file_mounts: &[&str]) -> (PathBuf, Pod) {
        let volumes: Vec<String> = file_mounts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!("  - name: v{i}\n    hostPath: {{path: {p}, type: FileOrCreate}}\n")
            })
            .collect();
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  containers:\n  - name: c\n    command: {command:?}\n  volumes:\n{}  - name: certs\n    hostPath: {{path: /etc/kubernetes/pki}}\n",
            volumes.concat()
        );
        (
            PathBuf::from(format!("/m/{name}.yaml")),
            serde_yaml::from_str(&yaml).unwrap(),
        )
    }

    fn manifests() -> Vec<(PathBuf, Pod)> {
        vec![
            pod(
                "kube-scheduler",
                &[
                    "kube-scheduler",
                    "--kubeconfig=/etc/kubernetes/scheduler.conf",
                ],
                &["/etc/kubernetes/scheduler.conf"],
            ),
            pod(
                "kube-apiserver",
                &[
                    "kube-apiserver",
                    "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt",
                    "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt",
                ],
                &[],
            ),
            pod(
                "kube-controller-manager",
                &[
                    "kube-controller-manager",
                    "--root-ca-file=/etc/kubernetes/pki/ca.crt",
                ],
                &["/etc/kubernetes/controller-manager.conf"],
            ),
            pod(
                "etcd",
                &["etcd", "--cert-file=/etc/kubernetes/pki/etcd/server.crt"],
                &[],
            ),
        ]
    }

    fn names(files: &[&str]) -> Vec<String> {
        let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
        affected_pods(&manifests(), &files)
            .into_iter()
            .map(|(_, name)| name)
            .collect()
    }

    #[test]
    fn only_pods_that_use_a_renewed_file_restart_in_control_plane_order() {
        assert_eq!(
            names(&["/etc/kubernetes/pki/apiserver.crt"]),
            ["kube-apiserver"]
        );
        assert_eq!(
            names(&[
                "/etc/kubernetes/scheduler.conf",
                "/etc/kubernetes/pki/etcd/server.crt",
                "/etc/kubernetes/pki/apiserver-etcd-client.crt",
            ]),
            ["etcd", "kube-apiserver", "kube-scheduler"]
        );
        assert_eq!(
            names(&["/etc/kubernetes/controller-manager.conf"]),
            ["kube-controller-manager"]
        );
        assert!(names(&["/etc/kubernetes/admin.conf"]).is_empty());
        assert!(
            names(&["/etc/kubernetes/pki/apiserver"]).is_empty(),
            "a prefix is not the file"
        );
    }

    #[test]
    fn marking_a_manifest_changes_only_the_annotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yaml");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\n  namespace: kube-system\nspec:\n  containers:\n  - name: etcd\n    image: e\n",
        )
        .unwrap();
        let before: Pod = serde_yaml::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        mark_renewed(&path, "2026-12-01T00:00:00Z").unwrap();
        let mut after: Pod = serde_yaml::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let annotations = after.metadata.annotations.take().unwrap();
        assert_eq!(annotations[RENEWED_ANNOTATION], "2026-12-01T00:00:00Z");
        assert_eq!(after, before);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
