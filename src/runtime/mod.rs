//! How a container runs. The agent, `boot reset` and the probes reach containers only through a
//! [`Runtime`], shaped like the CRI (design §8, style 14), which [`open`] makes: a pod gets a
//! sandbox (its network namespace, its volumes), then its containers start, are exec'd into, stop
//! and are watched for exit inside it; after an agent restart they are adopted by their recorded
//! handles. [`oci::OciRuntime`] runs each container from its image in namespaces of its own,
//! [`process::ProcessRuntime`] as a host process (design §5); both are built from the same Linux
//! mechanics ([`linux`]) and the same pod networking ([`network`]). [`names`] are the validated
//! identifiers the runtime turns into paths, [`logs`] the CRI log format, the per-container log
//! relay and the reader behind `boot logs`.

pub mod expansion;
pub mod ignored_fields;
pub mod linux;
pub mod logs;
pub mod names;
pub mod network;
pub mod oci;
mod open;
pub mod process;

pub use open::{open, RuntimeKind, RuntimeSettings};

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde::{Deserialize, Serialize};

use names::{Namespace, PodName, PodUid};

/// The pod a sandbox or container belongs to.
#[derive(Debug, Clone, Copy)]
pub struct PodRef<'a> {
    pub uid: &'a PodUid,
    pub namespace: &'a Namespace,
    /// `<name>-<node>`.
    pub full_name: &'a PodName,
    pub spec: &'a PodSpec,
}

/// What a pod's containers share. For the process runtime: the network namespace (none under
/// `hostNetwork`), and notes for status such as "pod networking not yet".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    pub pod_uid: PodUid,
    /// The bind-mounted network namespace the containers join, `None` under `hostNetwork: true`.
    pub netns: Option<PathBuf>,
    /// The pod IP (the first IPv4 address on the pod's `eth0`), `None` under `hostNetwork` or
    /// without pod networking. Probes of the pod go to it, as the kubelet's do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<std::net::IpAddr>,
    /// The CNI attachment to delete when the sandbox goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<network::PodNetwork>,
    pub notes: Vec<String>,
}

impl Sandbox {
    /// Where probes that name no host go: the pod IP, or the node's address for a pod in the
    /// host network (the kubelet probes `status.podIP`, which is the node's IP under hostNetwork).
    pub fn probe_host(&self, node_address: &str) -> String {
        self.pod_ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| node_address.to_string())
    }
}

/// One container to start.
#[derive(Debug, Clone)]
pub struct ContainerRequest<'a> {
    pub pod: PodRef<'a>,
    pub sandbox: &'a Sandbox,
    pub container: &'a Container,
    pub restart_count: u32,
    /// `/var/log/pods/<ns>_<name>_<uid>/<container>/<restartCount>.log` under the host root.
    pub log_path: PathBuf,
}

/// A started container, as recorded for adoption: enough to find the very same process again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerHandle {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat` (clock ticks since boot): a reused pid has another one.
    pub start_ticks: u64,
    #[serde(with = "unix_millis")]
    pub started_at: SystemTime,
    /// The container's cgroup directories (one per v1 controller, or the one v2 directory).
    pub cgroups: Vec<PathBuf>,
    /// The runtime's own name for the container (the OCI runtime's container id); `None` for a
    /// host process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    /// The image the container runs, as the kubelet's `imageID` (`name@sha256:…`); `None` for a
    /// host process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
}

/// How a container ended. An adopted process is not our child, so its exit status is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerExit {
    Code(i32),
    Signal(i32),
    Unknown,
}

impl ContainerExit {
    /// The exit code as the kubelet reports it: 128 + signal for a signal.
    pub fn exit_code(self) -> Option<i32> {
        match self {
            ContainerExit::Code(code) => Some(code),
            ContainerExit::Signal(signal) => Some(128 + signal),
            ContainerExit::Unknown => None,
        }
    }

    pub fn succeeded(self) -> bool {
        self == ContainerExit::Code(0)
    }
}

/// The kubelet keeps at most 10 KB of an exec's output (`maxReadLength` in `pkg/probe/exec`).
pub const EXEC_OUTPUT_LIMIT: usize = 10 * 1024;

/// The running container an exec goes into.
#[derive(Debug, Clone, Copy)]
pub struct ExecTarget<'a> {
    pub pod: PodRef<'a>,
    pub sandbox: &'a Sandbox,
    pub container: &'a Container,
    pub handle: &'a ContainerHandle,
}

/// How an exec ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEnd {
    Exited(i32),
    Signaled(i32),
    /// Killed (with everything it started) when the timeout expired.
    TimedOut,
    /// It never ran: no such program, no namespace to join, … (the message says which).
    CannotStart(String),
}

/// The result of [`Runtime::exec_sync`]: how it ended and its combined stdout and stderr, at
/// most [`EXEC_OUTPUT_LIMIT`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub end: ExecEnd,
    pub output: Vec<u8>,
}

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("pod {pod}: container {container}: {problem}")]
    Container {
        pod: String,
        container: String,
        problem: String,
    },
    #[error("pod {pod}: {problem}")]
    Pod { pod: String, problem: String },
}

/// A container runtime as the agent uses it. The synchronous calls may block on the host (they
/// check host paths, fork, mount): the agent makes them on blocking threads. Exits, stops and
/// execs are futures the agent spawns. Handles and sandboxes read back from records are
/// untrusted: an implementation acts only on what it can verify it made.
pub trait Runtime: Send + Sync + 'static {
    /// CRI `RunPodSandbox`: creates the pod's sandbox (network namespace, volumes), or finds the
    /// one a previous agent left (idempotent).
    fn create_sandbox(&self, pod: PodRef<'_>) -> Result<Sandbox, RuntimeError>;
    /// CRI `RemovePodSandbox`: removes the sandbox and what belongs to it (emptyDir volumes);
    /// its containers are stopped first. Ignores a sandbox it did not make.
    fn remove_sandbox(&self, sandbox: &Sandbox);
    /// CRI `CreateContainer` + `StartContainer`: the future resolves when it exits.
    fn start_container(
        &self,
        request: &ContainerRequest<'_>,
    ) -> Result<(ContainerHandle, BoxFuture<ContainerExit>), RuntimeError>;
    /// Takes over a container a previous agent started, if `handle` still names the same live
    /// container of this runtime; `None` otherwise (and then nothing is touched). The future
    /// resolves when it exits.
    fn adopt_container(&self, handle: &ContainerHandle) -> Option<BoxFuture<ContainerExit>>;
    /// CRI `StopContainer`: SIGTERM to the container, up to `grace` for it to exit, then SIGKILL
    /// to everything left of it. Never signals a process it cannot verify as the container's.
    fn stop_container(&self, handle: &ContainerHandle, grace: Duration) -> BoxFuture<()>;
    /// CRI `RemoveContainer`, after the main process exited: kills what is left of it and removes
    /// its cgroups.
    fn cleanup_container(&self, handle: &ContainerHandle) -> BoxFuture<()>;
    /// Runs `command` inside a running container (its network namespace, user and environment)
    /// and waits up to `timeout`, as the CRI's `ExecSync`. Exec probes use it.
    fn exec_sync(
        &self,
        target: ExecTarget<'_>,
        command: &[String],
        timeout: Duration,
    ) -> BoxFuture<ExecOutput>;
    /// `boot reset`, once every container is stopped: deletes every pod network attachment this
    /// runtime's CNI cache holds and the iptables chains no pod uses any more, then removes
    /// `sandboxes` (namespaces, emptyDirs, sandbox mounts); says what went and what could not.
    fn remove_all(&self, sandboxes: &[Sandbox]) -> network::sandbox::Teardown;
    /// Warnings about what this runtime cannot do here (no root, no cgroups), for status.
    fn warnings(&self) -> Vec<String>;
    /// The fields of `pod` this runtime does not apply (e.g. seccomp for host processes), each
    /// as its field path; the agent shows them as warnings in the pod's status.
    fn ignored_fields(&self, pod: PodRef<'_>) -> Vec<String>;
    /// Whether containers run from images: then the agent pulls each container's image (per its
    /// `imagePullPolicy`, with the kubelet's pull back-off) before starting it.
    fn needs_images(&self) -> bool {
        false
    }
}

/// `SystemTime` as milliseconds since the epoch in records and status.
pub mod unix_millis {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        s.serialize_u64(millis)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(UNIX_EPOCH + Duration::from_millis(u64::deserialize(d)?))
    }
}
