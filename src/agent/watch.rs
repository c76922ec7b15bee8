//! Waiting on what the agent reports, from the outside (`boot etcd snapshot restore`, `boot
//! upgrade`): the pod of a manifest gone, a one-shot pod finished, a new pod of a manifest
//! started and ready — or, as soon as the agent's status shows it, why not (its container ended
//! or is in back-off). The kubelet-free equivalent of kubeadm's static pod hash poll, with the
//! cause in hand instead of a timeout.
//!
//! Touches: connects to the agent's status socket.

use std::path::Path;
use std::time::{Duration, Instant};

use super::status::{self, AgentStatus, ContainerState, PodPhase, PodStatus};

/// How often the status is asked for: a status answer costs the agent a few hundred
/// microseconds.
const POLL: Duration = Duration::from_millis(200);

/// Why a wait ended without what it waited for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("{what} within {}s; last: {last}", waited.as_secs())]
    TimedOut {
        what: String,
        waited: Duration,
        last: String,
    },
    /// The new container ended or was restarted: it will not become ready by waiting.
    #[error("{pod}: {cause}")]
    Failed { pod: String, cause: String },
}

/// The live (not terminating) pod the agent runs for `manifest`.
pub fn pod_of<'a>(status: &'a AgentStatus, manifest: &Path) -> Option<&'a PodStatus> {
    status
        .pods
        .iter()
        .find(|p| p.manifest == manifest && !p.terminating)
}

/// Asks `socket` every [`POLL`] until `check` says done (`Some(Ok)`), failed (`Some(Err)`), or
/// `timeout` passes; `check` also names the last state it saw (for the timeout's message).
async fn poll<T>(
    socket: &Path,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&AgentStatus, &mut String) -> Option<Result<T, WaitError>>,
) -> Result<T, WaitError> {
    let started = Instant::now();
    let mut last = String::from("no answer from the agent yet");
    loop {
        match status::fetch(socket).await {
            Ok(status) => {
                if let Some(done) = check(&status, &mut last) {
                    return done;
                }
            }
            Err(e) => last = format!("the agent did not answer: {e}"),
        }
        if started.elapsed() >= timeout {
            return Err(WaitError::TimedOut {
                what: what.to_string(),
                waited: timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Until the agent runs no pod (not even a terminating one) for `manifest`.
pub async fn gone(socket: &Path, manifest: &Path, timeout: Duration) -> Result<(), WaitError> {
    let what = format!("the pod of {} did not stop", manifest.display());
    poll(socket, &what, timeout, |status, last| {
        match status.pods.iter().find(|p| p.manifest == manifest) {
            None => Some(Ok(())),
            Some(pod) => {
                *last = format!("{} is still {}", pod.name, describe(pod));
                None
            }
        }
    })
    .await
}

/// Until the one-shot pod of `manifest` (`restartPolicy: Never`) has ended: `Ok` when it
/// succeeded, [`WaitError::Failed`] with its containers' last words otherwise.
pub async fn finished(socket: &Path, manifest: &Path, timeout: Duration) -> Result<(), WaitError> {
    let what = format!("the pod of {} did not finish", manifest.display());
    poll(socket, &what, timeout, |status, last| {
        let pod = pod_of(status, manifest)?;
        match pod.phase {
            PodPhase::Succeeded => Some(Ok(())),
            PodPhase::Failed => Some(Err(WaitError::Failed {
                pod: pod.name.clone(),
                cause: causes(pod),
            })),
            _ => {
                *last = format!("{} is {}", pod.name, describe(pod));
                None
            }
        }
    })
    .await
}

/// Until the agent runs a pod for `manifest` other than `old_uid` whose containers started and
/// are ready. A container of the new pod that ends or restarts fails the wait at once: a
/// crash-looping component does not become ready by waiting out the bound.
pub async fn ready(
    socket: &Path,
    manifest: &Path,
    old_uid: Option<&str>,
    timeout: Duration,
) -> Result<String, WaitError> {
    let what = format!("the new pod of {} did not become ready", manifest.display());
    poll(socket, &what, timeout, |status, last| {
        let pod = pod_of(status, manifest).filter(|p| Some(p.uid.as_str()) != old_uid);
        let Some(pod) = pod else {
            *last = "the agent has not started the new pod yet".into();
            return None;
        };
        if pod.ready {
            return Some(Ok(pod.uid.clone()));
        }
        if let Some(cause) = failure(pod) {
            return Some(Err(WaitError::Failed {
                pod: pod.name.clone(),
                cause,
            }));
        }
        *last = format!("{} is {}", pod.name, describe(pod));
        None
    })
    .await
}

/// Why a new pod will not become ready without a restart: a container that ended, or one
/// that has restarted (it is in back-off or crash-looping).
fn failure(pod: &PodStatus) -> Option<String> {
    let broken = pod.containers.iter().any(|c| {
        c.restart_count > 0
            || matches!(c.state, ContainerState::Terminated(_))
            || (matches!(c.state, ContainerState::Waiting { .. }) && c.last_state.is_some())
    });
    (broken || pod.phase == PodPhase::Failed).then(|| causes(pod))
}

fn causes(pod: &PodStatus) -> String {
    let causes: Vec<String> = pod.containers.iter().flat_map(|c| c.causes()).collect();
    if causes.is_empty() {
        pod.reason.clone().unwrap_or_else(|| describe(pod))
    } else {
        causes.join("; ")
    }
}

fn describe(pod: &PodStatus) -> String {
    match &pod.reason {
        Some(reason) => format!("{:?}: {reason}", pod.phase),
        None => format!("{:?}", pod.phase),
    }
}
