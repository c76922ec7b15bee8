//! How the agent is set up: directories, node identity, endpoints, back-off, relist period.
//! `boot agent` fills these from flags and the configuration (`AgentOptions::from_args` in
//! `cli/agent.rs`); tests build them directly over a temporary root.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::backoff::BackoffSettings;
use crate::host::HostRoot;
use crate::runtime::logs::{DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE};
use crate::runtime::network::NetworkSettings;
use crate::runtime::{RuntimeKind, RuntimeSettings};
use crate::version::Version;

/// The kubelet's `staticPodPath` in a kubeadm cluster.
pub const DEFAULT_MANIFEST_DIR: &str = "/etc/kubernetes/manifests";
/// The kubelet's healthz endpoint (`healthzBindAddress:healthzPort`, 127.0.0.1:10248).
pub const DEFAULT_STATUS_ADDR: &str = "127.0.0.1:10248";
/// Far below the kubelet's 20 s `fileCheckFrequency`: the notify watch does the real work and a
/// relist of an unchanged directory only stats the files.
pub const DEFAULT_RELIST_PERIOD: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub root: HostRoot,
    /// The watched directory, already resolved under the root.
    pub manifest_dir: PathBuf,
    /// Searched for `command[0]` before `PATH`.
    pub bin_dirs: Vec<PathBuf>,
    pub node_name: String,
    /// The host probes use when they name none (the kubelet uses the pod IP, which is the node
    /// address under hostNetwork).
    pub node_address: String,
    /// The status socket (`<root>/run/boot/agent.sock`).
    pub status_socket: PathBuf,
    /// `/healthz` over TCP; `None` to serve none.
    pub status_addr: Option<SocketAddr>,
    /// `<root>/var/lib/boot`: records for adoption, emptyDir volumes.
    pub state_dir: PathBuf,
    /// `<root>/var/log/pods`.
    pub log_dir: PathBuf,
    /// `<root>/run/boot/netns`.
    pub netns_dir: PathBuf,
    /// Pod networking through CNI for pods without `hostNetwork`; `None`: loopback only.
    pub pod_network: Option<NetworkSettings>,
    pub backoff: BackoffSettings,
    pub relist_period: Duration,
    /// Stop every pod when the agent stops (default: leave them running, design §5 ★).
    pub stop_pods_on_exit: bool,
    pub cgroup_parent: String,
    /// The `boot` executable that runs each container's log relay.
    pub relay_exe: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// Print the agent's events (`[agent] …` lines) on stdout.
    pub print_events: bool,
    /// The Kubernetes version the agent stands in the kubelet of: probes send
    /// `User-Agent: kube-probe/<major>.<minor>` of it. From the configuration (its
    /// `kubernetesVersion`, else the kube-apiserver binary's); the default otherwise.
    pub kubernetes_version: Version,
    /// The agent's face in the API (Node, Lease, mirror pods, `:10250`); `None` without
    /// `kubelet.conf`.
    pub node: Option<crate::node::NodeOptions>,
    /// How containers run (`BootConfiguration.runtime`).
    pub runtime: RuntimeKind,
    /// Mirrors, credentials and insecure registries for image pulls.
    pub registries: crate::config::RegistriesConfiguration,
}

impl AgentOptions {
    /// The defaults for `root` and `node_name`: the kubelet's paths and numbers.
    pub fn new(root: HostRoot, node_name: impl Into<String>) -> AgentOptions {
        AgentOptions {
            manifest_dir: root.path(DEFAULT_MANIFEST_DIR),
            bin_dirs: Vec::new(),
            node_name: node_name.into(),
            node_address: "127.0.0.1".into(),
            status_socket: root.path("/run/boot/agent.sock"),
            status_addr: DEFAULT_STATUS_ADDR.parse().ok(),
            state_dir: root.path("/var/lib/boot"),
            log_dir: root.path("/var/log/pods"),
            netns_dir: root.path("/run/boot/netns"),
            pod_network: Some(NetworkSettings::for_root(&root)),
            backoff: BackoffSettings::default(),
            relist_period: DEFAULT_RELIST_PERIOD,
            stop_pods_on_exit: false,
            cgroup_parent: "boot".into(),
            relay_exe: PathBuf::from(crate::runtime::logs::relay::SELF_EXE),
            log_max_size: DEFAULT_MAX_SIZE,
            log_max_files: DEFAULT_MAX_FILES,
            print_events: true,
            kubernetes_version: crate::version::DEFAULT_KUBERNETES_VERSION
                .parse()
                .expect("the default version parses"),
            node: None,
            runtime: RuntimeKind::default(),
            registries: Default::default(),
            root,
        }
    }

    /// The runtime's settings: its directories under the root, the node name, the pod network.
    pub fn runtime_settings(&self) -> RuntimeSettings {
        RuntimeSettings {
            state_dir: self.state_dir.clone(),
            run_dir: self.root.path("/run/boot"),
            netns_dir: self.netns_dir.clone(),
            network: self.pod_network.clone(),
            bin_dirs: self.bin_dirs.clone(),
            node_name: self.node_name.clone(),
            boot_exe: self.relay_exe.clone(),
            log_max_size: self.log_max_size,
            log_max_files: self.log_max_files,
            cgroup_parent: self.cgroup_parent.clone(),
            ..RuntimeSettings::for_root(&self.root, self.node_name.clone())
        }
    }

    /// Where the agent records the containers it runs, for adoption.
    pub fn records_dir(&self) -> PathBuf {
        self.state_dir.join("agent")
    }
}
