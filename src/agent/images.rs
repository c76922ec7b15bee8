//! Images before containers, as the kubelet's image manager (`EnsureImageExists`, reference §1):
//! a container whose runtime runs images starts only when its image is present per its
//! `imagePullPolicy`; a failed pull shows `ErrImagePull`, and until the back-off window for
//! `(pod UID, image)` has passed, `ImagePullBackOff` with `Back-off pulling image "…": <error>`.
//! The window starts at 10 s and doubles to 300 s; it resets after 600 s without failure.
//!
//! [`PullBackoff`] is the pure timing; [`ImageGate`] runs the pulls in the background, one per
//! image at a time, and answers the supervisor without ever blocking it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Container;

use crate::image::{ImageError, ImageRef, PullPolicy, Quiet, Registries, Store};

/// `imageBackOffPeriod` and `MaxImageBackOff` (kubelet.go).
pub const IMAGE_BACKOFF_INITIAL: Duration = Duration::from_secs(10);
pub const IMAGE_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often the supervisor looks again while a pull runs.
pub const PULL_POLL: Duration = Duration::from_millis(250);

/// client-go's `flowcontrol.Backoff` for image pulls, keyed by `(pod UID, image)`.
#[derive(Debug, Default)]
pub struct PullBackoff {
    entries: HashMap<(String, String), Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    window: Duration,
    last_failure: Instant,
    error: String,
}

impl PullBackoff {
    /// An entry expires after twice the maximum without a failure (`hasExpired`): 600 s.
    fn live(&self, key: &(String, String), now: Instant) -> Option<&Entry> {
        self.entries
            .get(key)
            .filter(|e| now.saturating_duration_since(e.last_failure) <= 2 * IMAGE_BACKOFF_MAX)
    }

    /// Inside the window after the last failure: when it ends, and the error that opened it.
    pub fn in_backoff(
        &self,
        pod_uid: &str,
        image: &str,
        now: Instant,
    ) -> Option<(Instant, String)> {
        let key = (pod_uid.to_string(), image.to_string());
        let entry = self.live(&key, now)?;
        let until = entry.last_failure + entry.window;
        (now < until).then(|| (until, entry.error.clone()))
    }

    /// Records a failed pull (`Next`): the first window is 10 s, then each doubles up to 300 s.
    /// Returns when the next attempt may run.
    pub fn failed(&mut self, pod_uid: &str, image: &str, now: Instant, error: String) -> Instant {
        let key = (pod_uid.to_string(), image.to_string());
        let window = match self.live(&key, now) {
            Some(entry) => (entry.window * 2).min(IMAGE_BACKOFF_MAX),
            None => IMAGE_BACKOFF_INITIAL,
        };
        self.entries.insert(
            key,
            Entry {
                window,
                last_failure: now,
                error,
            },
        );
        now + window
    }
}

/// What a container waits for, in the kubelet's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: &'static str,
    pub message: String,
    /// When to ask again.
    pub until: Instant,
}

/// Pulls images for the supervisor in the background.
pub struct ImageGate {
    store: Store,
    registries: Registries,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    backoff: PullBackoff,
    /// Pulls running or finished and not yet collected, by normalised image.
    pulls: HashMap<String, Pull>,
}

enum Pull {
    Running,
    Done(Result<(), String>),
}

impl ImageGate {
    pub fn new(store: Store, registries: Registries) -> Arc<ImageGate> {
        Arc::new(ImageGate {
            store,
            registries,
            state: Mutex::new(GateState::default()),
        })
    }

    /// `None` when the container's image is ready; else why it waits. Starts a pull when one is
    /// due. Must be called inside the agent's tokio runtime.
    pub fn check(
        self: &Arc<Self>,
        pod_uid: &str,
        container: &Container,
        now: Instant,
    ) -> Option<Waiting> {
        let written = container.image.as_deref().unwrap_or_default();
        let image = match written.parse::<ImageRef>() {
            Ok(image) => image,
            Err(e) => {
                return Some(Waiting {
                    reason: "InvalidImageName",
                    message: format!("Failed to apply default image tag {written:?}: {e}"),
                    until: now + IMAGE_BACKOFF_INITIAL,
                })
            }
        };
        let policy = match PullPolicy::for_container(container.image_pull_policy.as_deref(), &image)
        {
            Ok(policy) => policy,
            Err(message) => {
                return Some(Waiting {
                    reason: "InvalidImageName",
                    message,
                    until: now + IMAGE_BACKOFF_INITIAL,
                })
            }
        };
        let name = image.to_string();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let finished = match state.pulls.get(&name) {
            Some(Pull::Running) => return Some(pulling(&name, now)),
            Some(Pull::Done(_)) => true,
            None => false,
        };
        if finished {
            if let Some(Pull::Done(result)) = state.pulls.remove(&name) {
                let Err(error) = result else {
                    return None;
                };
                state.backoff.failed(pod_uid, &name, now, error.clone());
                return Some(Waiting {
                    reason: "ErrImagePull",
                    message: error,
                    // Shown once; the next look finds the back-off window.
                    until: now + Duration::from_secs(1),
                });
            }
        }
        if policy != PullPolicy::Always && matches!(self.store.resolve(&image), Ok(Some(_))) {
            return None;
        }
        if policy == PullPolicy::Never {
            return Some(Waiting {
                reason: "ErrImageNeverPull",
                message: format!(
                    "Container image {written:?} is not present with pull policy of Never"
                ),
                until: now + IMAGE_BACKOFF_INITIAL,
            });
        }
        if let Some((until, error)) = state.backoff.in_backoff(pod_uid, &name, now) {
            return Some(Waiting {
                reason: "ImagePullBackOff",
                message: format!("Back-off pulling image {written:?}: {error}"),
                until,
            });
        }
        state.pulls.insert(name.clone(), Pull::Running);
        drop(state);
        let gate = self.clone();
        tokio::spawn(async move {
            let result = gate
                .store
                .ensure(&image, policy, &gate.registries, Arc::new(Quiet))
                .await
                .map(|_| ())
                .map_err(|e: ImageError| describe(&e));
            let mut state = gate.state.lock().unwrap_or_else(|p| p.into_inner());
            state.pulls.insert(image.to_string(), Pull::Done(result));
        });
        Some(pulling(&name, now))
    }
}

/// The gate for an agent: its store under the agent's root and its registry settings.
pub fn gate(options: &crate::agent::AgentOptions) -> Result<Arc<ImageGate>, ImageError> {
    let store = Store::open(&options.root)?;
    let registries = Registries::load(&options.registries, &options.root)?;
    for warning in registries.warnings() {
        eprintln!("[agent] warning: {warning}");
    }
    Ok(ImageGate::new(store, registries))
}

fn pulling(image: &str, now: Instant) -> Waiting {
    Waiting {
        reason: "ContainerCreating",
        message: format!("Pulling image {image:?}"),
        until: now + PULL_POLL,
    }
}

/// The error with its causes on one line.
fn describe(err: &ImageError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_10s_to_300s_and_resets_after_600s() {
        let mut backoff = PullBackoff::default();
        let t0 = Instant::now();
        assert!(backoff.in_backoff("uid", "img", t0).is_none());
        let mut now = t0;
        let mut windows = Vec::new();
        for _ in 0..7 {
            let until = backoff.failed("uid", "img", now, "boom".into());
            windows.push((until - now).as_secs());
            let (end, error) = backoff.in_backoff("uid", "img", now).unwrap();
            assert_eq!((end, error.as_str()), (until, "boom"));
            now = until; // retried right when the window ends
            assert!(backoff.in_backoff("uid", "img", now).is_none());
        }
        assert_eq!(windows, [10, 20, 40, 80, 160, 300, 300]);
        // Another pod's back-off for the same image is its own.
        assert!(backoff.in_backoff("other", "img", t0).is_none());
        // 600 s without a failure: the next failure starts at 10 s again.
        let later = now + Duration::from_secs(601);
        assert_eq!(
            backoff.failed("uid", "img", later, "x".into()) - later,
            Duration::from_secs(10)
        );
    }

    fn container(image: &str, policy: Option<&str>) -> Container {
        Container {
            name: "c".into(),
            image: Some(image.into()),
            image_pull_policy: policy.map(str::to_string),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn never_and_invalid_names_wait_with_the_kubelet_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_dir(dir.path().join("images")).unwrap();
        let gate = ImageGate::new(store, Registries::default());
        let now = Instant::now();
        let never = gate
            .check("uid", &container("busybox:1.28.4", Some("Never")), now)
            .unwrap();
        assert_eq!(never.reason, "ErrImageNeverPull");
        let invalid = gate
            .check("uid", &container("Busy Box", None), now)
            .unwrap();
        assert_eq!(invalid.reason, "InvalidImageName");
    }

    #[tokio::test]
    async fn a_failed_pull_shows_err_image_pull_then_image_pull_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_dir(dir.path().join("images")).unwrap();
        let gate = ImageGate::new(store, Registries::default());
        // Nothing listens on port 1 of loopback: the pull fails at once.
        let c = container("127.0.0.1:1/x/y:1", None);
        let start = Instant::now();
        assert_eq!(
            gate.check("uid", &c, start).unwrap().reason,
            "ContainerCreating"
        );
        let deadline = start + Duration::from_secs(20);
        let failed = loop {
            let waiting = gate.check("uid", &c, Instant::now()).unwrap();
            if waiting.reason != "ContainerCreating" {
                break waiting;
            }
            assert!(Instant::now() < deadline, "the pull never finished");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(failed.reason, "ErrImagePull");
        assert!(failed.message.contains("127.0.0.1:1"), "{}", failed.message);
        let later = gate.check("uid", &c, Instant::now()).unwrap();
        assert_eq!(later.reason, "ImagePullBackOff");
        assert!(later
            .message
            .starts_with("Back-off pulling image \"127.0.0.1:1/x/y:1\": "));
        assert!(later.until > Instant::now() + Duration::from_secs(8));
    }
}
