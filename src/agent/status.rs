//! The agent's status as `boot status` and `boot init` read it: serde types served as JSON on
//! the agent's unix socket (`GET /status`), and [`fetch`], the client side (hyper, through
//! [`crate::http::client`]).
//!
//! Touches: connects to `<root>/run/boot/agent.sock`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::UnixStream;

use crate::http::client;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentStatus {
    pub node_name: String,
    pub manifest_dir: PathBuf,
    pub agent_pid: u32,
    /// RFC 3339.
    pub started_at: String,
    /// How containers run: `process` or `oci`.
    #[serde(default)]
    pub runtime: String,
    /// What the runtime cannot do here (no root, no cgroups).
    pub warnings: Vec<String>,
    /// Manifest files that are refused (bad content, duplicate names).
    pub manifest_problems: Vec<ManifestProblem>,
    pub pods: Vec<PodStatus>,
    /// The node's sync with the API server; `None` when the agent runs without `kubelet.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiSyncStatus>,
}

/// Whether the agent's face in the API (Node, Lease, mirror pods) is current.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiSyncStatus {
    /// The API server this node talks to.
    pub server: String,
    pub node_registered: bool,
    /// Mirror pods present and current, and how many static pods want one.
    pub mirror_pods: u32,
    pub static_pods: u32,
    /// RFC 3339: the last time every object was in sync.
    pub last_sync: Option<String>,
    /// The last failure since then, if any.
    pub last_error: Option<String>,
    /// API requests the node side has made since the agent started (watches count once).
    #[serde(default)]
    pub requests: u64,
    /// Events about the static pods posted, and dropped (queue full, expired, over the rate).
    #[serde(default)]
    pub events_posted: u64,
    #[serde(default)]
    pub events_dropped: u64,
}

impl ApiSyncStatus {
    pub fn in_sync(&self) -> bool {
        self.node_registered && self.mirror_pods == self.static_pods && self.last_error.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestProblem {
    pub path: PathBuf,
    pub error: String,
    /// The pod that keeps running from the file's last good version.
    pub kept_running: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    /// `<name>-<node>`.
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub manifest: PathBuf,
    pub phase: PodPhase,
    pub terminating: bool,
    pub ready: bool,
    /// `host`, or the pod's own network namespace and its CNI attachment.
    pub network: String,
    /// The pod IP from CNI; `None` under hostNetwork or without pod networking.
    #[serde(default, rename = "podIP", skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    pub restarts: u32,
    /// The manifest no longer parses; the last good version keeps running.
    pub manifest_error: Option<String>,
    /// Fields of the pod the runtime does not apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_fields: Vec<String>,
    /// Why the pod is not healthy, in one line; `None` when it is running and ready.
    pub reason: Option<String>,
    pub init_containers: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    pub ready: bool,
    pub started: bool,
    pub restart_count: u32,
    pub last_state: Option<Terminated>,
    pub probes: Vec<ProbeStatus>,
    pub log_path: PathBuf,
    /// The image the manifest names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The image the running container was started from, `name@sha256:…`; `None` for
    /// a host process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ContainerState {
    #[serde(rename_all = "camelCase")]
    Waiting {
        reason: String,
        message: Option<String>,
        backoff_remaining_ms: Option<u64>,
    },
    #[serde(rename_all = "camelCase")]
    Running {
        pid: i32,
        started_at: String,
        adopted: bool,
        stopping: Option<String>,
    },
    Terminated(Terminated),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    /// `None` when unknown (an adopted process is not the agent's child).
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: String,
    pub finished_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStatus {
    /// `startup`, `liveness` or `readiness`.
    pub kind: String,
    /// `success`, `failure` or `unknown`.
    pub result: String,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
}

impl ContainerStatus {
    /// Why this container is not running and ready, one line each, most telling first; empty
    /// when it is fine. A container in back-off says why (with the time left and its last exit),
    /// a stopping one why it stops, an unready one which probe fails and its error, an ended one
    /// how it ended.
    pub fn causes(&self) -> Vec<String> {
        let name = &self.name;
        let last_exit = self
            .last_state
            .as_ref()
            .and_then(|t| t.message.clone())
            .map(|m| format!(" (last: {m})"))
            .unwrap_or_default();
        match &self.state {
            ContainerState::Waiting {
                reason,
                message: Some(message),
                backoff_remaining_ms,
            } => {
                let left = backoff_remaining_ms
                    .map(|ms| format!(", {:.1}s left", ms as f64 / 1000.0))
                    .unwrap_or_default();
                vec![format!(
                    "container {name}: {reason}: {message}{left}{last_exit}"
                )]
            }
            ContainerState::Running {
                stopping: Some(why),
                ..
            } => vec![format!("container {name}: stopping: {why}")],
            ContainerState::Running { .. } if !self.ready => {
                let failing: Vec<&ProbeStatus> = self
                    .probes
                    .iter()
                    .filter(|p| p.consecutive_failures > 0 || p.result != "success")
                    .collect();
                if failing.is_empty() {
                    return vec![format!("container {name}: not ready{last_exit}")];
                }
                failing
                    .iter()
                    .map(|p| match &p.last_error {
                        Some(error) => format!(
                            "container {name}: {} probe failing ({} in a row): {error}{last_exit}",
                            p.kind, p.consecutive_failures
                        ),
                        None => format!(
                            "container {name}: waiting for its {} probe{last_exit}",
                            p.kind
                        ),
                    })
                    .collect()
            }
            ContainerState::Terminated(t) if t.exit_code != Some(0) => vec![format!(
                "container {name}: {}: {}",
                t.reason,
                t.message.clone().unwrap_or_default()
            )],
            _ => Vec::new(),
        }
    }
}

impl AgentStatus {
    /// Every pod running and ready, and no refused manifest: what `boot status` exits 0 for.
    pub fn all_healthy(&self) -> bool {
        self.manifest_problems.is_empty() && self.pods.iter().all(PodStatus::healthy)
    }

    pub fn pod(&self, name: &str) -> Option<&PodStatus> {
        self.pods.iter().find(|p| {
            p.name == name || p.name.strip_suffix(&format!("-{}", self.node_name)) == Some(name)
        })
    }
}

impl PodStatus {
    /// Every container's [`ContainerStatus::causes`], init containers first.
    pub fn container_causes(&self) -> Vec<String> {
        self.init_containers
            .iter()
            .chain(&self.containers)
            .flat_map(ContainerStatus::causes)
            .collect()
    }

    pub fn healthy(&self) -> bool {
        self.phase == PodPhase::Running && self.ready && !self.terminating
    }

    pub fn pid(&self) -> Option<i32> {
        self.containers.iter().find_map(|c| match c.state {
            ContainerState::Running { pid, .. } => Some(pid),
            _ => None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StatusClientError {
    #[error("nothing answers on {socket}")]
    NotRunning {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("the agent at {socket} did not answer properly: {problem}")]
    BadAnswer { socket: PathBuf, problem: String },
}

/// How long the status client waits for the whole answer (the agent answers in milliseconds;
/// its own bound on asking the supervisor is 5 s).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read: a pod's status is a few KiB.
const MAX_ANSWER: usize = 8 * 1024 * 1024;

/// Asks the agent listening on `socket` for its status.
pub async fn fetch(socket: &Path) -> Result<AgentStatus, StatusClientError> {
    let body = request(socket, "/status").await?;
    serde_json::from_slice(&body).map_err(|e| StatusClientError::BadAnswer {
        socket: socket.to_path_buf(),
        problem: e.to_string(),
    })
}

/// [`fetch`] for code without an async runtime (`boot status`) or inside one that must not be
/// re-entered: runs a runtime of its own on a thread of its own.
pub fn fetch_blocking(socket: &Path) -> Result<AgentStatus, StatusClientError> {
    let bad = |problem: String| StatusClientError::BadAnswer {
        socket: socket.to_path_buf(),
        problem,
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| bad(format!("cannot start the async runtime: {e}")))?;
                runtime.block_on(fetch(socket))
            })
            .join()
            .unwrap_or_else(|_| Err(bad("the status client failed".into())))
    })
}

/// `GET path` over the unix socket; returns the body of a 200 answer.
pub async fn request(socket: &Path, path: &str) -> Result<Vec<u8>, StatusClientError> {
    let bad = |problem: String| StatusClientError::BadAnswer {
        socket: socket.to_path_buf(),
        problem,
    };
    let exchange = async {
        let stream =
            UnixStream::connect(socket)
                .await
                .map_err(|source| StatusClientError::NotRunning {
                    socket: socket.to_path_buf(),
                    source,
                })?;
        let request = http::Request::get(path)
            .header(http::header::HOST, "boot")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .map_err(|e| bad(e.to_string()))?;
        let answer = client::send(stream, request, MAX_ANSWER)
            .await
            .map_err(|e| bad(e.to_string()))?;
        if answer.status != http::StatusCode::OK {
            return Err(bad(format!(
                "{}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            )));
        }
        if answer.truncated {
            return Err(bad(format!("the answer is over {MAX_ANSWER} bytes")));
        }
        Ok(answer.body.to_vec())
    };
    tokio::time::timeout(CLIENT_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(bad(format!("no answer within {CLIENT_TIMEOUT:?}"))))
}
