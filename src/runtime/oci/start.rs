//! Starting one container: its image, user, directories and termination log, the spec, the log
//! relay, then `boot oci-shim create`; the handle records the container id for adoption, exec
//! and removal.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::Container;

use super::{check_name, launch, podfiles, spec, OciRuntime};
use crate::runtime::linux::{proc, relay};
use crate::runtime::{BoxFuture, ContainerExit, ContainerHandle, ContainerRequest, PodRef};

impl OciRuntime {
    pub(super) fn start(
        &self,
        request: &ContainerRequest<'_>,
    ) -> Result<(ContainerHandle, BoxFuture<ContainerExit>), String> {
        let pod = request.pod;
        let container = request.container;
        check_name("container name", &container.name)?;
        let id = format!("{}-{}-{}", pod.uid, container.name, request.restart_count);
        let reference = container.image.as_deref().unwrap_or_default();
        let image = self.images.rootfs(reference)?;
        let user = super::user::resolve(
            &user_request(pod, container, image.config.user.as_deref()),
            &super::user::read_from_layers(&image.layers, "etc/passwd"),
            &super::user::read_from_layers(&image.layers, "etc/group"),
        )?;
        let dirs = self.container_dirs(&id);
        // A leftover of an earlier attempt at this very run (the agent died mid-start).
        self.remove_container(&id);
        let sandbox_dirs = self.sandbox_dirs(pod.uid);
        let termination_log = sandbox_dirs
            .create_termination_log(&container.name, request.restart_count)
            .map_err(|e| format!("cannot create its termination log: {e}"))?;
        let host_network = pod.spec.host_network.unwrap_or(false);
        let host_ipc = pod.spec.host_ipc.unwrap_or(false);
        let (cgroups_path, cgroup_dirs) =
            self.cgroup_path(pod.uid, &container.name, request.restart_count);
        let volume_paths = self.volume_paths(pod)?;
        let hostname = if host_network {
            self.settings.node_name.clone()
        } else {
            podfiles::hostname(pod.spec, pod.full_name)
        };
        let termination_path = container
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/dev/termination-log".into());
        let input = spec::SpecInput {
            pod: pod.spec,
            container,
            image: &image.config,
            hostname: &hostname,
            user: &user,
            rootfs: dirs.rootfs(),
            namespaces: spec::PodNamespaces {
                net: request.sandbox.netns.clone(),
                ipc: (!host_ipc).then(|| sandbox_dirs.ipc()),
                uts: (!host_network).then(|| sandbox_dirs.uts()),
            },
            files: spec::InjectedFiles {
                hosts: Some(sandbox_dirs.hosts()),
                hostname: Some(sandbox_dirs.hostname()),
                resolv_conf: Some(sandbox_dirs.resolv_conf()),
                termination_log: Some((termination_log, termination_path)),
                shm: (!host_ipc).then(|| sandbox_dirs.shm()),
            },
            volume_paths: &volume_paths,
            cgroups_path,
            cgroup_v2: self.cgroup_v2,
            thermal_throttle_paths: thermal_throttle_paths(),
            current_capabilities: &self.current_capabilities,
        };
        let config = spec::build(&input)?;
        std::fs::create_dir_all(&dirs.dir)
            .map_err(|e| format!("cannot create {}: {e}", dirs.dir.display()))?;
        let json = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
        let mut files = vec![crate::host::RenderedFile {
            path: dirs.config(),
            mode: 0o600,
            bytes: json,
        }];
        // The profile compiled once per agent; one it cannot compile, libcontainer compiles in
        // the container (and reports there what is wrong with it).
        let program = super::seccomp_executor::profile(&config)
            .and_then(|profile| self.seccomp_programs.get(profile).ok());
        if let Some(program) = program {
            files.push(crate::host::RenderedFile {
                path: dirs.seccomp_program(),
                mode: 0o600,
                bytes: program.to_vec(),
            });
        }
        crate::host::write_all(&files).map_err(|e| e.to_string())?;

        let s = &self.settings;
        let output = relay::start(&relay::LogRelay {
            exe: &s.boot_exe,
            log_file: &request.log_path,
            max_size: s.log_max_size,
            max_files: s.log_max_files,
        })
        .map_err(|e| format!("cannot start its log relay {}: {e}", s.boot_exe.display()))?;
        let state = self.libcontainer_state();
        let created = launch::create(
            &launch::CreateRequest {
                shim: &s.boot_exe,
                state: &state,
                id: &id,
                bundle: &dirs.dir,
                layers: &image.layers,
            },
            output.stdout,
            output.stderr,
        )
        .map_err(|e| format!("image {reference}: {e}"));
        let pid = match created {
            Ok(pid) => pid,
            Err(e) => {
                self.remove_container(&id);
                return Err(e);
            }
        };
        let pidfd = proc::pidfd_open(pid).map_err(|e| format!("cannot watch pid {pid}: {e}"))?;
        let start_ticks = proc::stat(pid).map(|s| s.start_ticks).unwrap_or_default();
        let handle = ContainerHandle {
            pid,
            start_ticks,
            started_at: SystemTime::now(),
            cgroups: cgroup_dirs,
            container_id: Some(id),
            image_id: image.repo_digest.clone(),
        };
        Ok((handle, Box::pin(launch::wait_exit(pidfd))))
    }
}

fn user_request<'a>(
    pod: PodRef<'a>,
    container: &'a Container,
    image_user: Option<&'a str>,
) -> super::user::UserRequest<'a> {
    let c = container.security_context.as_ref();
    let p = pod.spec.security_context.as_ref();
    let mut extra_groups: Vec<i64> = p
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default();
    extra_groups.extend(p.and_then(|p| p.fs_group));
    super::user::UserRequest {
        image_user,
        run_as_user: c
            .and_then(|c| c.run_as_user)
            .or_else(|| p.and_then(|p| p.run_as_user)),
        run_as_group: c
            .and_then(|c| c.run_as_group)
            .or_else(|| p.and_then(|p| p.run_as_group)),
        extra_groups,
    }
}

/// Every `/sys/devices/system/cpu/cpu<N>/thermal_throttle` on this host (the kubelet masks them).
fn thermal_throttle_paths() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/sys/devices/system/cpu") else {
        return Vec::new();
    };
    let mut paths: Vec<String> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("cpu")
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path().join("thermal_throttle"))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    paths.sort();
    paths
}
