//! The one way to get a [`Runtime`]: [`open`] with the [`RuntimeKind`] and the
//! [`RuntimeSettings`] (its directories under the host root, the node name, pod networking, the
//! cgroup parent, log sizes). The agent opens the runtime it runs containers with; `boot reset`
//! opens the same one over the same directories to stop and remove what the agent left.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::logs::{relay::SELF_EXE, DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE};
use super::network::NetworkSettings;
use super::oci::image::{ImageSource, StaticImages};
use super::oci::{OciRuntime, OciSettings};
use super::process::{ProcessRuntime, ProcessSettings};
use super::Runtime;
use crate::host::HostRoot;

/// How containers run (`BootConfiguration.runtime`, `boot agent --runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Host binaries looked up in `binDirs`, for hosts that install the components.
    Process,
    /// The manifest's image, pulled into the image store and run in namespaces of its own
    /// (youki's libcontainer): what kubeadm + kubelet + containerd do, so the default.
    #[default]
    Oci,
}

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Process => "process",
            RuntimeKind::Oci => "oci",
        }
    }

    /// The runtime whose containers `settings`' directories hold: OCI once it made a sandbox
    /// there, the process runtime otherwise (`boot reset` without knowing the configuration).
    pub fn found(settings: &RuntimeSettings) -> RuntimeKind {
        if settings.oci_run_dir().join("pods").exists() {
            RuntimeKind::Oci
        } else {
            RuntimeKind::Process
        }
    }
}

/// What every runtime is set up with.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// `<root>/var/lib/boot`: emptyDir volumes (`pods/`), the OCI runtime's containers (`oci/`).
    pub state_dir: PathBuf,
    /// `<root>/run/boot`: the OCI runtime's state and sandboxes (`oci/`).
    pub run_dir: PathBuf,
    /// Where pod network namespaces are bind-mounted (`<root>/run/boot/netns`).
    pub netns_dir: PathBuf,
    /// Pod networking through CNI; `None` leaves a pod's namespace with loopback only.
    pub network: Option<NetworkSettings>,
    /// Directories searched for `command[0]` before `PATH` (the process runtime).
    pub bin_dirs: Vec<PathBuf>,
    /// The node name: `HOSTNAME` of host processes, the hostname of `hostNetwork` pods.
    pub node_name: String,
    /// The `boot` executable: runs `boot log-relay` and `boot oci-shim`.
    pub boot_exe: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// The cgroup parent directory name (`boot`).
    pub cgroup_parent: String,
    /// The node's resolv.conf (the kubelet's `resolvConf`) and hosts file.
    pub host_resolv_conf: PathBuf,
    pub host_hosts: PathBuf,
}

impl RuntimeSettings {
    /// The defaults for `root`: the agent's directories, boot's pod network, this executable.
    pub fn for_root(root: &HostRoot, node_name: impl Into<String>) -> RuntimeSettings {
        RuntimeSettings {
            state_dir: root.path("/var/lib/boot"),
            run_dir: root.path("/run/boot"),
            netns_dir: root.path("/run/boot/netns"),
            network: Some(NetworkSettings::for_root(root)),
            bin_dirs: Vec::new(),
            node_name: node_name.into(),
            boot_exe: PathBuf::from(SELF_EXE),
            log_max_size: DEFAULT_MAX_SIZE,
            log_max_files: DEFAULT_MAX_FILES,
            cgroup_parent: "boot".into(),
            host_resolv_conf: root.path("/etc/resolv.conf"),
            host_hosts: root.path("/etc/hosts"),
        }
    }

    /// Where `emptyDir` volumes live.
    pub fn pods_dir(&self) -> PathBuf {
        self.state_dir.join("pods")
    }

    fn oci_run_dir(&self) -> PathBuf {
        self.run_dir.join("oci")
    }

    pub fn process(&self) -> ProcessSettings {
        ProcessSettings {
            bin_dirs: self.bin_dirs.clone(),
            hostname: self.node_name.clone(),
            netns_dir: self.netns_dir.clone(),
            network: self.network.clone(),
            pods_dir: self.pods_dir(),
            relay_exe: self.boot_exe.clone(),
            log_max_size: self.log_max_size,
            log_max_files: self.log_max_files,
            cgroup_parent: self.cgroup_parent.clone(),
        }
    }

    pub fn oci(&self) -> OciSettings {
        OciSettings {
            state_dir: self.state_dir.join("oci"),
            run_dir: self.oci_run_dir(),
            netns_dir: self.netns_dir.clone(),
            network: self.network.clone(),
            pods_dir: self.pods_dir(),
            boot_exe: self.boot_exe.clone(),
            log_max_size: self.log_max_size,
            log_max_files: self.log_max_files,
            cgroup_parent: self.cgroup_parent.clone(),
            node_name: self.node_name.clone(),
            cluster_dns: Default::default(),
            host_resolv_conf: self.host_resolv_conf.clone(),
            host_hosts: self.host_hosts.clone(),
        }
    }
}

/// The runtime of `kind`. The OCI runtime runs images from `images`; without them (`boot
/// reset`, which only stops and removes) it knows none.
pub fn open(
    kind: RuntimeKind,
    settings: &RuntimeSettings,
    images: Option<Arc<dyn ImageSource>>,
) -> Arc<dyn Runtime> {
    match kind {
        RuntimeKind::Process => Arc::new(ProcessRuntime::new(settings.process())),
        RuntimeKind::Oci => {
            let images = images.unwrap_or_else(|| Arc::new(StaticImages::new()));
            Arc::new(OciRuntime::new(settings.oci(), images))
        }
    }
}
