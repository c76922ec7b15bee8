//! The OCI runtime: every container runs from its image in namespaces of its own, as the kubelet,
//! containerd and runc run it (design §8, reference §6–9). A pod's sandbox ([`sandbox`]) holds
//! what its containers share: the network namespace, an IPC and a UTS namespace, `/dev/shm` and
//! the injected files. A container's root file system is an overlay of its image's layers
//! ([`rootfs`]); its OCI spec ([`spec`]) is built from the Pod and the image configuration; youki's
//! `libcontainer` creates it in the single-threaded [`shim`], started by [`launch`]. The agent
//! inherits each container's init (it makes itself a child subreaper) and watches it through a
//! pidfd; a restarted agent adopts it by pid and start time, as the process runtime does.
//!
//! Touches: `<root>/var/lib/boot/oci/containers/<id>/` (bundle, overlay upper and work),
//! `<root>/run/boot/oci/{state,pods}/`, `<root>/run/boot/netns/`, hostPath volumes,
//! `/sys/fs/cgroup/**/<cgroupParent>/pod<uid>/`, the log directory.

pub mod image;
pub mod launch;
pub mod podfiles;
pub mod rootfs;
pub mod sandbox;
mod seccomp_bpf;
mod seccomp_executor;
pub mod shim;
pub mod spec;
mod start;
pub mod user;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;

use self::image::ImageSource;
use self::rootfs::ContainerDirs;
use self::sandbox::{SandboxDirs, SandboxFiles};
use super::ignored_fields::{self, ContainerField, PodField, Unsupported};
use super::linux::{cgroup, proc, volumes};
use super::network::{self, NetworkSettings};
use super::{
    BoxFuture, ContainerExit, ContainerHandle, ContainerRequest, ExecEnd, ExecOutput, ExecTarget,
    PodRef, Runtime, RuntimeError, Sandbox,
};

/// How the OCI runtime is set up.
#[derive(Debug, Clone)]
pub struct OciSettings {
    /// `<root>/var/lib/boot/oci`: one directory per container (bundle, upper, work).
    pub state_dir: PathBuf,
    /// `<root>/run/boot/oci`: libcontainer's state and the pods' sandboxes.
    pub run_dir: PathBuf,
    /// Where pod network namespaces are bind-mounted (`<root>/run/boot/netns`).
    pub netns_dir: PathBuf,
    /// Pod networking through CNI; `None` leaves a pod's namespace with loopback only.
    pub network: Option<NetworkSettings>,
    /// Where `emptyDir` volumes live (`<root>/var/lib/boot/pods`).
    pub pods_dir: PathBuf,
    /// The `boot` executable: runs `boot oci-shim` and `boot log-relay`.
    pub boot_exe: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// The cgroup parent (`boot`): containers go to `/<parent>/pod<uid>/<name>-<restart>`.
    pub cgroup_parent: String,
    /// The node name: the hostname of `hostNetwork` pods.
    pub node_name: String,
    pub cluster_dns: podfiles::ClusterDns,
    /// The node's resolv.conf (the kubelet's `resolvConf`) and hosts file.
    pub host_resolv_conf: PathBuf,
    pub host_hosts: PathBuf,
}

pub struct OciRuntime {
    settings: OciSettings,
    images: Arc<dyn ImageSource>,
    cgroup_v2: bool,
    /// The agent's effective capabilities: what privileged containers get.
    current_capabilities: Vec<String>,
    /// The seccomp programs compiled so far.
    seccomp_programs: seccomp_bpf::FilterCache,
    warnings: Vec<String>,
}

/// At most this much of the node's resolv.conf and hosts file is read.
const MAX_HOST_FILE: u64 = 64 * 1024;

impl OciRuntime {
    /// Makes the calling process a child subreaper, so that containers' init processes pass to
    /// it when their shim exits and their exit status can be collected.
    pub fn new(settings: OciSettings, images: Arc<dyn ImageSource>) -> OciRuntime {
        let mut warnings = Vec::new();
        if !nix::unistd::geteuid().is_root() {
            warnings.push("the OCI runtime needs root: containers cannot start".into());
        }
        // SAFETY: prctl with an integer argument changes only this process's reaper flag.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            warnings.push("not a child subreaper: container exit codes are unknown".into());
        }
        let cgroup_v2 = nix::sys::statfs::statfs("/sys/fs/cgroup")
            .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
        OciRuntime {
            settings,
            images,
            cgroup_v2,
            current_capabilities: own_capabilities(),
            seccomp_programs: Default::default(),
            warnings,
        }
    }

    fn sandbox_dirs(&self, pod_uid: &str) -> SandboxDirs {
        SandboxDirs::new(self.settings.run_dir.join("pods").join(pod_uid))
    }

    fn libcontainer_state(&self) -> PathBuf {
        self.settings.run_dir.join("state")
    }

    fn container_dirs(&self, id: &str) -> ContainerDirs {
        ContainerDirs::new(self.settings.state_dir.join("containers").join(id))
    }

    /// `/<parent>/pod<uid>/<name>-<restart>`, and its directories on this host.
    fn cgroup_path(&self, pod_uid: &str, name: &str, restart: u32) -> (PathBuf, Vec<PathBuf>) {
        let path = PathBuf::from(format!(
            "/{}/pod{pod_uid}/{name}-{restart}",
            self.settings.cgroup_parent
        ));
        let relative = path.strip_prefix("/").unwrap_or(&path).to_path_buf();
        let base = Path::new("/sys/fs/cgroup");
        let dirs = if self.cgroup_v2 {
            vec![base.join(&relative)]
        } else {
            // libcontainer places the container in every mounted v1 hierarchy.
            v1_hierarchies(base)
                .into_iter()
                .map(|h| h.join(&relative))
                .collect()
        };
        (path, dirs)
    }

    fn volume_paths(&self, pod: PodRef<'_>) -> Result<Vec<(String, PathBuf)>, String> {
        volumes::prepare_pod_volumes(pod, &self.settings.pods_dir)
    }

    fn create_sandbox_inner(&self, pod: PodRef<'_>) -> Result<Sandbox, String> {
        self.volume_paths(pod)?;
        let host_network = pod.spec.host_network.unwrap_or(false);
        let mut sandbox = Sandbox {
            pod_uid: pod.uid.clone(),
            netns: None,
            pod_ip: None,
            network: None,
            notes: Vec::new(),
        };
        if !host_network {
            network::sandbox::create(
                self.settings.network.as_ref(),
                &self.settings.netns_dir,
                pod,
                &mut sandbox,
            )?;
        }
        let hostname = if host_network {
            self.settings.node_name.clone()
        } else {
            podfiles::hostname(pod.spec, pod.full_name)
        };
        let read = |path: &Path| read_bounded(path).unwrap_or_default();
        let (resolv_conf, warning) = podfiles::resolv_conf(
            pod.spec,
            pod.namespace,
            &self.settings.cluster_dns,
            &read(&self.settings.host_resolv_conf),
        );
        sandbox.notes.extend(warning);
        let files = SandboxFiles {
            hosts: podfiles::hosts(
                pod.spec,
                &hostname,
                sandbox.pod_ip,
                &read(&self.settings.host_hosts),
            ),
            hostname,
            resolv_conf,
            own_ipc: !pod.spec.host_ipc.unwrap_or(false),
            own_uts: !host_network,
        };
        self.sandbox_dirs(pod.uid).create(&files)?;
        Ok(sandbox)
    }

    fn remove_container(&self, id: &str) {
        remove_container(&self.libcontainer_state(), &self.container_dirs(id), id);
    }
}

/// Deletes libcontainer's state and cgroups of a container, unmounts its overlay and removes its
/// directory. Blocking; idempotent.
fn remove_container(libcontainer_state: &Path, dirs: &ContainerDirs, id: &str) {
    if check_name("container id", id).is_err() {
        return;
    }
    let state = libcontainer_state.join(id);
    if state.exists() {
        if let Ok(mut container) = libcontainer::container::Container::load(state.clone()) {
            let _ = container.delete(true);
        }
        let _ = std::fs::remove_dir_all(&state);
    }
    let _ = rootfs::remove(dirs);
}

/// The mounted cgroup v1 hierarchies (`/sys/fs/cgroup/<name>` directories, not the symlinks that
/// alias co-mounted controllers).
fn v1_hierarchies(base: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| p.join("cgroup.procs").exists())
        .collect();
    dirs.sort();
    dirs
}

/// Names that become path components: what a DNS label or a pod uid allows, nothing else.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!("{what} {name:?} cannot name a directory"))
    }
}

/// What the OCI runtime does not apply: LSM labels and profiles (no SELinux or AppArmor
/// support here), a shared pid namespace, `fsGroupChangePolicy` (volumes are not chowned).
const UNSUPPORTED: Unsupported = Unsupported {
    pod: &[
        PodField::FsGroupChangePolicy,
        PodField::SeLinuxOptions,
        PodField::AppArmorProfile,
        PodField::WindowsOptions,
        PodField::ShareProcessNamespace,
    ],
    container: &[
        ContainerField::SeLinuxOptions,
        ContainerField::AppArmorProfile,
        ContainerField::WindowsOptions,
    ],
};

/// This process's effective capabilities (`CapEff` in `/proc/self/status`); every capability
/// the kernel knows when that cannot be read.
fn own_capabilities() -> Vec<String> {
    read_bounded(Path::new("/proc/self/status"))
        .and_then(|status| {
            let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .map(spec::process::capabilities_in_mask)
        .unwrap_or_else(|| {
            spec::process::ALL_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect()
        })
}

/// A host file as text, at most [`MAX_HOST_FILE`] bytes, only a regular file (the node's
/// resolv.conf may be a symbolic link, as systemd-resolved makes it).
fn read_bounded(path: &Path) -> Option<String> {
    let bytes = crate::host::read_bounded(path, MAX_HOST_FILE, crate::host::Links::Follow).ok()?;
    String::from_utf8(bytes).ok()
}

/// Sends `signal` to the container's init if `handle` still names it.
fn signal_init(handle: &ContainerHandle, signal: Signal) -> Option<std::os::fd::OwnedFd> {
    if handle.pid <= 1 || !proc::is_same_live_process(handle.pid, handle.start_ticks) {
        return None;
    }
    let pidfd = proc::pidfd_open(handle.pid).ok()?;
    // SAFETY: pidfd_send_signal with a valid pidfd, a signal number, no siginfo and no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            signal as i32,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
    Some(pidfd)
}

impl Runtime for OciRuntime {
    fn create_sandbox(&self, pod: PodRef<'_>) -> Result<Sandbox, RuntimeError> {
        self.create_sandbox_inner(pod)
            .map_err(|problem| RuntimeError::Pod {
                pod: pod.full_name.to_string(),
                problem,
            })
    }

    fn remove_sandbox(&self, sandbox: &Sandbox) {
        network::sandbox::remove(
            self.settings.network.as_ref(),
            &self.settings.netns_dir,
            sandbox,
        );
        let _ = self.sandbox_dirs(&sandbox.pod_uid).remove();
        volumes::remove_pod_dir(&self.settings.pods_dir, &sandbox.pod_uid);
    }

    fn start_container(
        &self,
        request: &ContainerRequest<'_>,
    ) -> Result<(ContainerHandle, BoxFuture<ContainerExit>), RuntimeError> {
        self.start(request)
            .map_err(|problem| RuntimeError::Container {
                pod: request.pod.full_name.to_string(),
                container: request.container.name.clone(),
                problem,
            })
    }

    fn adopt_container(&self, handle: &ContainerHandle) -> Option<BoxFuture<ContainerExit>> {
        if !proc::is_same_live_process(handle.pid, handle.start_ticks) {
            return None;
        }
        let pidfd = proc::pidfd_open(handle.pid).ok()?;
        if !proc::is_same_live_process(handle.pid, handle.start_ticks) {
            return None;
        }
        // Usually not our child (the agent that inherited it is gone), and then the status is
        // unknown; `wait_exit` collects it when it is.
        Some(Box::pin(launch::wait_exit(pidfd)))
    }

    fn stop_container(&self, handle: &ContainerHandle, grace: Duration) -> BoxFuture<()> {
        let handle = handle.clone();
        Box::pin(async move {
            if let Some(pidfd) = signal_init(&handle, Signal::SIGTERM) {
                let _ = tokio::time::timeout(grace, proc::wait_pidfd(pidfd)).await;
                // SIGKILL to a pid namespace's init ends every process in it.
                signal_init(&handle, Signal::SIGKILL);
            }
            for dir in &handle.cgroups {
                cgroup::kill_all(dir);
            }
        })
    }

    fn cleanup_container(&self, handle: &ContainerHandle) -> BoxFuture<()> {
        let handle = handle.clone();
        let state = self.libcontainer_state();
        let dirs = handle
            .container_id
            .as_deref()
            .map(|id| self.container_dirs(id));
        Box::pin(async move {
            signal_init(&handle, Signal::SIGKILL);
            // Killed processes leave the cgroup once reaped; wait for that for a while.
            for _ in 0..100 {
                handle.cgroups.iter().for_each(|dir| cgroup::kill_all(dir));
                if handle
                    .cgroups
                    .iter()
                    .all(|dir| cgroup::pids(dir).is_empty())
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if let (Some(id), Some(dirs)) = (handle.container_id.clone(), dirs) {
                let _ =
                    tokio::task::spawn_blocking(move || remove_container(&state, &dirs, &id)).await;
            }
            // What libcontainer left: the container's cgroups and the pod's, once empty.
            cgroup::remove(&handle.cgroups);
        })
    }

    fn remove_all(&self, sandboxes: &[Sandbox]) -> network::sandbox::Teardown {
        let teardown = network::sandbox::remove_all(self.settings.network.as_ref());
        for sandbox in sandboxes {
            self.remove_sandbox(sandbox);
        }
        teardown
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    fn exec_sync(
        &self,
        target: ExecTarget<'_>,
        command: &[String],
        timeout: Duration,
    ) -> BoxFuture<ExecOutput> {
        let Some(id) = target.handle.container_id.clone() else {
            return Box::pin(async {
                ExecOutput {
                    end: ExecEnd::CannotStart("not an OCI container".into()),
                    output: Vec::new(),
                }
            });
        };
        let shim = self.settings.boot_exe.clone();
        let state = self.libcontainer_state();
        let command = command.to_vec();
        Box::pin(async move { launch::exec_sync(&shim, &state, &id, &command, timeout).await })
    }

    fn ignored_fields(&self, pod: PodRef<'_>) -> Vec<String> {
        ignored_fields::in_use(pod.spec, &UNSUPPORTED)
    }

    fn needs_images(&self) -> bool {
        self.images.pulled_by_agent()
    }
}
