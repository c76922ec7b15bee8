//! The OCI runtime spec (`config.json`) of one container, built from the Pod, the container and
//! its image's configuration the way containerd's CRI plugin builds it for the kubelet
//! (reference §6–8). Pure: every host fact (the resolved user, the pod's namespace files, the
//! injected files, the thermal-throttle paths to mask) comes in through [`SpecInput`].
//!
//! [`process`] has the arguments, environment, working directory and capabilities; [`mounts`]
//! the file system; [`seccomp`] the `RuntimeDefault` profile; this module the namespaces,
//! masked and read-only paths, devices and cgroup limits.

pub mod mounts;
pub mod process;
pub mod seccomp;

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use libcontainer::oci_spec::runtime::{
    Capability, Linux, LinuxCapabilities, LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxNamespace,
    LinuxNamespaceType, LinuxResources, Process, Root, Spec, User,
};

use super::image::ImageConfig;
use super::user::ResolvedUser;
use crate::runtime::linux::cgroup::Limits;
pub use mounts::InjectedFiles;

/// The kubelet's masked paths for the default `procMount` (`pkg/securitycontext/util.go`), plus
/// every `/sys/devices/system/cpu/cpu<N>/thermal_throttle` the host has (given in
/// [`SpecInput::thermal_throttle_paths`]).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// The kubelet's read-only paths for the default `procMount`.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// CFS period the kubelet uses (`QuotaPeriod`, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;

/// The namespace files a pod's containers join.
#[derive(Debug, Clone, Default)]
pub struct PodNamespaces {
    /// The sandbox's network namespace; `None` under `hostNetwork`.
    pub net: Option<PathBuf>,
    /// The pod's IPC namespace; `None` under `hostIPC`.
    pub ipc: Option<PathBuf>,
    /// The pod's UTS namespace (its hostname); `None` under `hostNetwork`.
    pub uts: Option<PathBuf>,
}

/// Everything the spec is built from.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub pod: &'a PodSpec,
    pub container: &'a Container,
    pub image: &'a ImageConfig,
    /// The pod's hostname (`HOSTNAME` in the environment).
    pub hostname: &'a str,
    pub user: &'a ResolvedUser,
    /// The mounted root file system (the overlay).
    pub rootfs: PathBuf,
    pub namespaces: PodNamespaces,
    pub files: InjectedFiles,
    pub volume_paths: &'a [(String, PathBuf)],
    /// `linux.cgroupsPath`.
    pub cgroups_path: PathBuf,
    /// Whether the host uses the unified cgroup hierarchy (a cgroup namespace only there).
    pub cgroup_v2: bool,
    pub thermal_throttle_paths: Vec<String>,
    /// The capabilities the agent holds: what `privileged` and `add: [ALL]` grant.
    pub current_capabilities: &'a [String],
}

fn namespace(typ: LinuxNamespaceType, path: Option<PathBuf>) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ).set_path(path);
    ns
}

/// Builds the spec, or says which field of the container makes it impossible.
pub fn build(input: &SpecInput<'_>) -> Result<Spec, String> {
    let container = input.container;
    let security = container.security_context.as_ref();
    let privileged = security.and_then(|s| s.privileged).unwrap_or(false);
    let pod_env = process::pod_env(container)?;
    let vars: BTreeMap<&str, &str> = pod_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let args = process::args(container, input.image, &vars)?;
    let capability_names = process::capabilities(
        privileged,
        security.and_then(|s| s.capabilities.as_ref()),
        input.current_capabilities,
    );
    let capability_set = capability_names
        .iter()
        .map(|name| {
            // oci-spec parses the names without their `CAP_` prefix.
            name.strip_prefix("CAP_")
                .unwrap_or(name)
                .parse::<Capability>()
                .map_err(|_| format!("securityContext.capabilities: unknown capability {name:?}"))
        })
        .collect::<Result<libcontainer::oci_spec::runtime::Capabilities, String>>()?;
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(capability_set.clone()))
        .set_permitted(Some(capability_set.clone()))
        .set_effective(Some(capability_set))
        .set_inheritable(None)
        .set_ambient(None);
    let mut user = User::default();
    user.set_uid(input.user.uid)
        .set_gid(input.user.gid)
        .set_additional_gids(
            (!input.user.additional_gids.is_empty()).then(|| input.user.additional_gids.clone()),
        );
    let mut proc = Process::default();
    proc.set_terminal(Some(false))
        .set_user(user)
        .set_args(Some(args))
        .set_env(Some(process::environment(
            input.hostname,
            input.image,
            &pod_env,
        )))
        .set_cwd(PathBuf::from(process::working_dir(container, input.image)))
        .set_capabilities(Some(caps))
        // CRI removes the base spec's rlimits: containers inherit the runtime's.
        .set_rlimits(None)
        // The kubelet asks for no_new_privs only for an explicit allowPrivilegeEscalation: false.
        // Absent rather than `false` otherwise: libcontainer installs seccomp while it still has
        // CAP_SYS_ADMIN only when the field is absent, and later (failing without
        // no_new_privs) when it is `false`.
        .set_no_new_privileges(
            (security.and_then(|s| s.allow_privilege_escalation) == Some(false)).then_some(true),
        )
        .set_oom_score_adj(None);

    let mut root = Root::default();
    root.set_path(input.rootfs.clone()).set_readonly(Some(
        security.and_then(|s| s.read_only_root_filesystem) == Some(true),
    ));

    let defaults = mounts::defaults(privileged, &input.files);
    let volumes = mounts::volumes(container, input.volume_paths)?;
    let all_mounts = mounts::merge(defaults, volumes);

    let mut linux = Linux::default();
    linux
        .set_namespaces(Some(namespaces(input, privileged)))
        .set_cgroups_path(Some(input.cgroups_path.clone()))
        .set_resources(Some(resources(container, privileged)))
        .set_devices(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(None)
        .set_seccomp(seccomp::profile_for(
            input.pod,
            container,
            privileged,
            &capability_names,
        )?);
    let unmasked = security.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked");
    if privileged || unmasked {
        linux.set_masked_paths(None).set_readonly_paths(None);
    } else {
        let mut masked: Vec<String> = MASKED_PATHS.iter().map(|p| p.to_string()).collect();
        masked.extend(input.thermal_throttle_paths.iter().cloned());
        linux
            .set_masked_paths(Some(masked))
            .set_readonly_paths(Some(READONLY_PATHS.iter().map(|p| p.to_string()).collect()));
    }

    let mut spec = Spec::default();
    spec.set_version("1.2.0".into())
        .set_process(Some(proc))
        .set_root(Some(root))
        .set_hostname(None)
        .set_mounts(Some(all_mounts))
        .set_hooks(None)
        .set_annotations(None)
        .set_linux(Some(linux));
    Ok(spec)
}

/// pid (unless `hostPID`), mount, the pod's network, IPC and UTS namespaces (none of these under
/// `hostNetwork`/`hostIPC`: containerd leaves NODE namespaces out), and a cgroup namespace on
/// cgroup v2 for unprivileged containers.
fn namespaces(input: &SpecInput<'_>, privileged: bool) -> Vec<LinuxNamespace> {
    let mut list = vec![namespace(LinuxNamespaceType::Mount, None)];
    if !input.pod.host_pid.unwrap_or(false) {
        // shareProcessNamespace needs a pod-level init (containerd's pause container), which boot
        // does not run: each container keeps a pid namespace of its own.
        list.push(namespace(LinuxNamespaceType::Pid, None));
    }
    let ns = &input.namespaces;
    if let Some(path) = &ns.net {
        list.push(namespace(LinuxNamespaceType::Network, Some(path.clone())));
    }
    if let Some(path) = &ns.ipc {
        list.push(namespace(LinuxNamespaceType::Ipc, Some(path.clone())));
    }
    if let Some(path) = &ns.uts {
        list.push(namespace(LinuxNamespaceType::Uts, Some(path.clone())));
    }
    if input.cgroup_v2 && !privileged {
        list.push(namespace(LinuxNamespaceType::Cgroup, None));
    }
    list
}

/// The kubelet's limits (memory limit, CPU quota from the limit, shares from the request) and
/// the device cgroup: deny everything, then the runtime's default devices (libcgroups adds
/// them); privileged containers may use every device.
fn resources(container: &Container, privileged: bool) -> LinuxResources {
    let limits = Limits::from_resources(container.resources.as_ref());
    let mut resources = LinuxResources::default();
    if let Some(bytes) = limits.memory_bytes {
        let mut memory = LinuxMemory::default();
        memory.set_limit(Some(i64::try_from(bytes).unwrap_or(i64::MAX)));
        resources.set_memory(Some(memory));
    }
    if limits.cpu_quota_us.is_some() || limits.cpu_shares.is_some() {
        let mut cpu = LinuxCpu::default();
        cpu.set_shares(limits.cpu_shares).set_quota(
            limits
                .cpu_quota_us
                .map(|q| i64::try_from(q).unwrap_or(i64::MAX)),
        );
        if limits.cpu_quota_us.is_some() {
            cpu.set_period(Some(CPU_PERIOD_US));
        }
        resources.set_cpu(Some(cpu));
    }
    let mut all = LinuxDeviceCgroup::default();
    all.set_allow(privileged).set_access(Some("rwm".into()));
    resources.set_devices(Some(vec![all]));
    resources
}

#[cfg(test)]
mod tests;
