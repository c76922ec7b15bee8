//! The process runtime: every container is a host process (design §5). A pod's sandbox is its
//! network namespace and its prepared volumes; a container is a session and process-group leader
//! in its own cgroup with the limits of its `resources.limits`, started by [`spawn`] from the
//! program and arguments [`command`] resolves, with the bind mounts [`binds`] lists, its output
//! going through a log relay; [`exec`] runs commands inside it for exec probes and [`security`]
//! applies its `securityContext`. The mechanics (cgroups, namespaces, pidfds, volumes) are
//! [`crate::runtime::linux`]'s. Signals go only through checked pidfds; handles and sandboxes read
//! back from records are acted on only when they name this runtime's own cgroups and netns path.
//! Without root there are no cgroups and no namespaces: the pods still run, and
//! [`ProcessRuntime::warnings`] says what is missing.
//!
//! Touches: `/sys/fs/cgroup`, `<root>/run/boot/netns`, `<root>/var/lib/boot/pods/<uid>` (emptyDir),
//! hostPath volumes, the log directory.

pub mod binds;
pub mod command;
pub mod exec;
pub mod security;
pub mod spawn;

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;

use super::linux::cgroup::{self, CgroupLayout, Limits};
use super::linux::proc::{self, PinnedProcess};
use super::linux::{relay, volumes};
use super::network::{self, NetworkSettings};
use super::{
    BoxFuture, ContainerExit, ContainerHandle, ContainerRequest, ExecEnd, ExecOutput, ExecTarget,
    PodRef, Runtime, RuntimeError, Sandbox,
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
    /// Pod networking through CNI; `None` leaves a pod's namespace with loopback only.
    pub network: Option<NetworkSettings>,
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

    /// A handle read back from a record, if it names only what this runtime creates: a pid above
    /// 1 and cgroup directories of its own layout (with cgroups, every container has them).
    /// Records are untrusted input.
    fn checked(&self, handle: &ContainerHandle) -> Option<ContainerHandle> {
        let cgroups_ours = match &self.cgroups {
            Some(layout) => {
                !handle.cgroups.is_empty() && handle.cgroups.iter().all(|dir| layout.owns(dir))
            }
            None => handle.cgroups.is_empty(),
        };
        (handle.pid > 1 && cgroups_ours).then(|| handle.clone())
    }

    /// Pins the handle's main process, if it is still the recorded one and (with cgroups) still
    /// in the container's cgroup, which only this runtime puts processes into.
    fn pin(handle: &ContainerHandle) -> Option<PinnedProcess> {
        let leader = PinnedProcess::open(handle.pid, handle.start_ticks)?;
        let in_cgroup = handle
            .cgroups
            .first()
            .is_none_or(|dir| proc::is_member(handle.pid, dir));
        in_cgroup.then_some(leader)
    }

    fn volume_paths(&self, pod: PodRef<'_>) -> Result<Vec<(String, PathBuf)>, String> {
        volumes::prepare_pod_volumes(pod, &self.settings.pods_dir)
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
            crate::host::lookup::is_executable,
        )?;
        let identity = security::process_identity(
            request.pod.spec,
            container,
            nix::unistd::geteuid().as_raw(),
        )?;
        let mounts = binds::bind_mounts(container, &self.volume_paths(request.pod)?)?;
        if !mounts.is_empty() && !self.privileged {
            return Err(format!(
                "mounts {} at a path other than its hostPath or read-only, which needs root",
                mounts[0].target.display()
            ));
        }
        binds::ensure_targets(&mounts)
            .map_err(|e| format!("cannot create a bind mount target: {e}"))?;
        let mut setup = spawn::ChildSetup {
            mounts,
            identity,
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
        let s = &self.settings;
        let output = relay::start(&relay::LogRelay {
            exe: &s.relay_exe,
            log_file: &request.log_path,
            max_size: s.log_max_size,
            max_files: s.log_max_files,
        })
        .map_err(|e| format!("cannot start its log relay {}: {e}", s.relay_exe.display()))?;
        let mut child = spawn::spawn_container(&spec, setup, output.stdout, output.stderr)
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
            image_id: None,
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

/// SIGTERM to the container's process group, up to `grace` for it to exit, then SIGKILL to the
/// group and to everything left in its cgroups. Every signal goes through a pidfd checked
/// against the recorded start time ([`proc::PinnedProcess`]): a reused pid is never signalled.
async fn stop_process_group(handle: &ContainerHandle, grace: Duration) {
    if let Some(leader) = ProcessRuntime::pin(handle) {
        proc::signal_group(&leader, handle.start_ticks, Signal::SIGTERM);
        let PinnedProcess { pid, pidfd } = leader;
        let watched = pidfd.try_clone();
        if let Ok(watched) = watched {
            let _ = tokio::time::timeout(grace, proc::wait_pidfd(watched)).await;
        }
        let leader = PinnedProcess { pid, pidfd };
        proc::signal_group(&leader, handle.start_ticks, Signal::SIGKILL);
    }
    for dir in &handle.cgroups {
        cgroup::kill_all(dir);
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
            pod_uid: pod.uid.clone(),
            netns: None,
            pod_ip: None,
            network: None,
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
        network::sandbox::create(
            self.settings.network.as_ref(),
            &self.settings.netns_dir,
            pod,
            &mut sandbox,
        )
        .map_err(fail)?;
        Ok(sandbox)
    }

    fn remove_sandbox(&self, sandbox: &Sandbox) {
        network::sandbox::remove(
            self.settings.network.as_ref(),
            &self.settings.netns_dir,
            sandbox,
        );
        // The pod's emptyDir volumes go with it (the kubelet's emptyDir TearDown).
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
        let handle = self.checked(handle)?;
        let leader = Self::pin(&handle)?;
        Some(Box::pin(async move {
            let _ = proc::wait_pidfd(leader.pidfd).await;
            ContainerExit::Unknown
        }))
    }

    fn stop_container(&self, handle: &ContainerHandle, grace: Duration) -> BoxFuture<()> {
        let handle = self.checked(handle);
        Box::pin(async move {
            if let Some(handle) = handle {
                stop_process_group(&handle, grace).await;
            }
        })
    }

    fn cleanup_container(&self, handle: &ContainerHandle) -> BoxFuture<()> {
        let Some(handle) = self.checked(handle) else {
            return Box::pin(async {});
        };
        Box::pin(async move {
            match Self::pin(&handle) {
                Some(leader) => proc::signal_group(&leader, handle.start_ticks, Signal::SIGKILL),
                // The main process is gone; what it left in its group may not be.
                None => proc::signal_group_members(handle.pid, handle.start_ticks, Signal::SIGKILL),
            }
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
        let search_path =
            std::env::var("PATH").unwrap_or_else(|_| command::DEFAULT_PATH.to_string());
        let env = command::environment(
            target.container,
            &self.settings.bin_dirs,
            &search_path,
            &self.settings.hostname,
        );
        let setup = security::process_identity(
            target.pod.spec,
            target.container,
            nix::unistd::geteuid().as_raw(),
        )
        .and_then(|identity| {
            let netns =
                exec::open_netns(target.sandbox.netns.as_ref()).map_err(|e| e.to_string())?;
            Ok(exec::ExecSetup {
                env,
                netns,
                identity,
            })
        });
        let command = command.to_vec();
        Box::pin(async move {
            match setup {
                Ok(setup) => exec::exec(&command, setup, timeout).await,
                Err(message) => ExecOutput {
                    end: ExecEnd::CannotStart(message),
                    output: Vec::new(),
                },
            }
        })
    }

    fn ignored_fields(&self, pod: PodRef<'_>) -> Vec<String> {
        security::unsupported_fields(pod.spec)
    }
}
