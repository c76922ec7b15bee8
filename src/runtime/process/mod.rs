//! The process runtime: every container is a host process (design §5). A pod's sandbox is its
//! network namespace ([`netns`]) and its prepared volumes ([`volumes`]); a container is a session
//! and process-group leader in its own cgroup ([`cgroup`]) with the limits of its
//! `resources.limits`, started by [`spawn`] from the program and arguments [`command`] resolves,
//! its output going through a log relay. Without root there are no cgroups and no namespaces: the
//! pods still run, and [`ProcessRuntime::warnings`] says what is missing.
//!
//! Touches: `/sys/fs/cgroup`, `<root>/run/boot/netns`, hostPath volumes, the log directory.

pub mod cgroup;
pub mod command;
pub mod netns;
pub mod proc;
pub mod quantity;
pub mod spawn;
pub mod volumes;

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use self::cgroup::{CgroupLayout, Limits};
use super::{
    BoxFuture, ContainerExit, ContainerHandle, ContainerRequest, PodRef, Runtime, RuntimeError,
    Sandbox,
};

/// How the process runtime is set up.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// Directories searched for `command[0]` before `PATH`.
    pub bin_dirs: Vec<PathBuf>,
    /// The node name, given to containers as `HOSTNAME`.
    pub hostname: String,
    /// Where pod network namespaces are bind-mounted (`<root>/run/boot/netns`).
    pub netns_dir: PathBuf,
    /// Where `emptyDir` volumes live (`<root>/var/lib/boot/pods`).
    pub pods_dir: PathBuf,
    /// The `boot` executable that runs `boot log-relay`.
    pub relay_exe: PathBuf,
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// The cgroup parent directory name (`boot`).
    pub cgroup_parent: String,
}

#[derive(Debug)]
pub struct ProcessRuntime {
    settings: ProcessSettings,
    cgroups: Option<CgroupLayout>,
    privileged: bool,
    warnings: Vec<String>,
}

impl ProcessRuntime {
    pub fn new(settings: ProcessSettings) -> ProcessRuntime {
        let privileged = nix::unistd::geteuid().is_root();
        let mut warnings = Vec::new();
        let cgroups = if privileged {
            CgroupLayout::detect(&settings.cgroup_parent)
        } else {
            None
        };
        if !privileged {
            warnings.push(
                "not running as root: no cgroups, no network or mount namespaces; pods run in the host network".into(),
            );
        } else if cgroups.is_none() {
            warnings
                .push("no usable cgroup hierarchy found: resource limits are not applied".into());
        }
        ProcessRuntime {
            settings,
            cgroups,
            privileged,
            warnings,
        }
    }

    pub fn cgroup_layout(&self) -> Option<&CgroupLayout> {
        self.cgroups.as_ref()
    }

    fn volume_paths(&self, pod: PodRef<'_>) -> Result<Vec<(String, PathBuf)>, String> {
        let empty_dir_base = self.settings.pods_dir.join(pod.uid).join("volumes");
        let volumes = pod.spec.volumes.iter().flatten();
        volumes
            .map(|v| Ok((v.name.clone(), volumes::prepare_volume(v, &empty_dir_base)?)))
            .collect()
    }

    fn start(
        &self,
        request: &ContainerRequest<'_>,
    ) -> Result<(ContainerHandle, BoxFuture<ContainerExit>), String> {
        let container = request.container;
        let search_path =
            std::env::var("PATH").unwrap_or_else(|_| command::DEFAULT_PATH.to_string());
        let spec = command::process_spec(
            container,
            &self.settings.bin_dirs,
            &search_path,
            &self.settings.hostname,
            is_executable,
        )?;
        let mounts = volumes::bind_mounts(container, &self.volume_paths(request.pod)?)?;
        if !mounts.is_empty() && !self.privileged {
            return Err(format!(
                "mounts {} at a path other than its hostPath, which needs root",
                mounts[0].target.display()
            ));
        }
        volumes::ensure_targets(&mounts)
            .map_err(|e| format!("cannot create a bind mount target: {e}"))?;
        let mut setup = spawn::ChildSetup {
            mounts,
            ..Default::default()
        };
        let mut cgroup_dirs = Vec::new();
        if let Some(layout) = &self.cgroups {
            cgroup_dirs =
                layout.container_dirs(request.pod.uid, &container.name, request.restart_count);
            let limits = Limits::from_resources(container.resources.as_ref());
            layout
                .create(&cgroup_dirs, limits)
                .map_err(|e| format!("cannot set up its cgroup: {e}"))?;
            for dir in &cgroup_dirs {
                let file = fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.procs"));
                setup.cgroup_procs.push(
                    file.map_err(|e| format!("cannot open {}/cgroup.procs: {e}", dir.display()))?
                        .into(),
                );
            }
        }
        if let Some(netns) = &request.sandbox.netns {
            let file = fs::File::open(netns).map_err(|e| {
                format!("cannot open its network namespace {}: {e}", netns.display())
            })?;
            setup.netns = Some(file.into());
        }
        (setup.run_as_user, setup.run_as_group) = run_as(request.pod, container);
        let (out_read, out_write) = pipe()?;
        let (err_read, err_write) = pipe()?;
        let s = &self.settings;
        let mut relay = spawn::spawn_relay(
            &s.relay_exe,
            &request.log_path,
            s.log_max_size,
            s.log_max_files,
            out_read,
            err_read,
        )
        .map_err(|e| format!("cannot start its log relay {}: {e}", s.relay_exe.display()))?;
        tokio::spawn(async move {
            let _ = relay.wait().await; // reaps the relay when the container's pipes close
        });
        let mut child = spawn::spawn_container(&spec, setup, out_write, err_write)
            .map_err(|e| format!("cannot start {}: {e}", spec.program.display()))?;
        let pid = child
            .id()
            .map(|p| p as i32)
            .ok_or("exited before its pid was known")?;
        let start_ticks = proc::stat(pid).map(|s| s.start_ticks).unwrap_or_default();
        let handle = ContainerHandle {
            pid,
            start_ticks,
            started_at: SystemTime::now(),
            cgroups: cgroup_dirs,
            container_id: None,
        };
        let exit: BoxFuture<ContainerExit> = Box::pin(async move {
            use std::os::unix::process::ExitStatusExt;
            match child.wait().await {
                Ok(status) => match (status.code(), status.signal()) {
                    (Some(code), _) => ContainerExit::Code(code),
                    (None, Some(signal)) => ContainerExit::Signal(signal),
                    _ => ContainerExit::Unknown,
                },
                Err(_) => ContainerExit::Unknown,
            }
        });
        Ok((handle, exit))
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `securityContext.runAsUser/runAsGroup`, the container's over the pod's.
fn run_as(
    pod: PodRef<'_>,
    container: &k8s_openapi::api::core::v1::Container,
) -> (Option<u32>, Option<u32>) {
    let c = container.security_context.as_ref();
    let p = pod.spec.security_context.as_ref();
    let uid = c
        .and_then(|c| c.run_as_user)
        .or_else(|| p.and_then(|p| p.run_as_user));
    let gid = c
        .and_then(|c| c.run_as_group)
        .or_else(|| p.and_then(|p| p.run_as_group));
    (
        uid.and_then(|u| u32::try_from(u).ok()),
        gid.and_then(|g| u32::try_from(g).ok()),
    )
}

/// SIGTERM to the container's process group, up to `grace` for it to exit, then SIGKILL to the
/// group and to everything left in its cgroups. A recorded pid that is no longer the same process
/// (its start time differs) is never signalled.
pub async fn stop_process_group(handle: &ContainerHandle, grace: Duration) {
    let alive = proc::is_same_live_process(handle.pid, handle.start_ticks);
    let pidfd = if alive {
        proc::pidfd_open(handle.pid).ok()
    } else {
        None
    };
    if let Some(pidfd) = pidfd {
        signal_group(handle.pid, Signal::SIGTERM);
        let _ = tokio::time::timeout(grace, proc::wait_pidfd(pidfd)).await;
        signal_group(handle.pid, Signal::SIGKILL);
    }
    for dir in &handle.cgroups {
        cgroup::kill_all(dir);
    }
}

fn signal_group(pid: i32, signal: Signal) {
    if pid > 1 {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

impl Runtime for ProcessRuntime {
    fn create_sandbox(&self, pod: PodRef<'_>) -> Result<Sandbox, RuntimeError> {
        let fail = |problem: String| RuntimeError::Pod {
            pod: pod.full_name.to_string(),
            problem,
        };
        self.volume_paths(pod).map_err(fail)?;
        let host_network = pod.spec.host_network.unwrap_or(false);
        let mut sandbox = Sandbox {
            pod_uid: pod.uid.to_string(),
            netns: None,
            notes: Vec::new(),
        };
        if host_network {
            return Ok(sandbox);
        }
        if !self.privileged {
            sandbox
                .notes
                .push("no network namespace without root: runs in the host network".into());
            return Ok(sandbox);
        }
        let path = self.settings.netns_dir.join(pod.uid);
        netns::create(&path).map_err(|e| {
            fail(format!(
                "cannot create its network namespace {}: {e}",
                path.display()
            ))
        })?;
        sandbox.netns = Some(path);
        sandbox
            .notes
            .push("own network namespace, loopback only (pod networking not yet)".into());
        Ok(sandbox)
    }

    fn remove_sandbox(&self, sandbox: &Sandbox) {
        if let Some(path) = &sandbox.netns {
            netns::remove(path);
        }
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
        // The pid could have been reused between the check and the open: check again, now that
        // the pidfd pins the process.
        if !proc::is_same_live_process(handle.pid, handle.start_ticks) {
            return None;
        }
        Some(Box::pin(async move {
            let _ = proc::wait_pidfd(pidfd).await;
            ContainerExit::Unknown
        }))
    }

    fn stop_container(&self, handle: &ContainerHandle, grace: Duration) -> BoxFuture<()> {
        let handle = handle.clone();
        Box::pin(async move { stop_process_group(&handle, grace).await })
    }

    fn cleanup_container(&self, handle: &ContainerHandle) -> BoxFuture<()> {
        let handle = handle.clone();
        Box::pin(async move {
            signal_group(handle.pid, Signal::SIGKILL);
            if handle.cgroups.is_empty() {
                return;
            }
            // Killed processes leave the cgroup once reaped; retry the removal for a while.
            for _ in 0..100 {
                for dir in &handle.cgroups {
                    cgroup::kill_all(dir);
                }
                if cgroup::remove(&handle.cgroups) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}
