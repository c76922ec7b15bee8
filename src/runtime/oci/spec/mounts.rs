//! The mounts of a container (pure), as containerd's CRI plugin lays them out
//! (`pkg/oci/mounts.go`, `internal/cri/opts/spec_linux_opts.go`; reference §6, §7): `/proc`,
//! `/dev`, `/dev/pts`, `/dev/shm` (the pod's), `/dev/mqueue`, `/sys`, `/sys/fs/cgroup`; the files
//! the kubelet and containerd inject (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`, the
//! termination log); then the container's `volumeMounts`. A volume mounted at a default's
//! destination replaces it, and one at `/dev` drops every default below `/dev/`.

use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::Container;
use libcontainer::oci_spec::runtime::Mount;

/// Where the injected files come from on the host.
#[derive(Debug, Clone, Default)]
pub struct InjectedFiles {
    pub hosts: Option<PathBuf>,
    pub hostname: Option<PathBuf>,
    pub resolv_conf: Option<PathBuf>,
    /// The container's termination log file and its `terminationMessagePath`.
    pub termination_log: Option<(PathBuf, String)>,
    /// The pod's `/dev/shm` (a tmpfs per sandbox); `None` under `hostIPC` (the host's).
    pub shm: Option<PathBuf>,
}

fn mount(destination: &str, typ: &str, source: &Path, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(destination))
        .set_typ(Some(typ.to_string()))
        .set_source(Some(source.to_path_buf()))
        .set_options(Some(options.iter().map(|o| o.to_string()).collect()));
    m
}

fn bind(destination: &str, source: &Path, propagation: &str, read_only: bool) -> Mount {
    let access = if read_only { "ro" } else { "rw" };
    mount(destination, "bind", source, &["rbind", propagation, access])
}

/// The default mounts every container gets.
pub fn defaults(privileged: bool, files: &InjectedFiles) -> Vec<Mount> {
    let sys_access = if privileged { "rw" } else { "ro" };
    let mut mounts = vec![
        mount(
            "/proc",
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            Path::new("mqueue"),
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", sys_access],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            Path::new("cgroup"),
            &["nosuid", "noexec", "nodev", "relatime", sys_access],
        ),
    ];
    let shm = files
        .shm
        .clone()
        .unwrap_or_else(|| PathBuf::from("/dev/shm"));
    mounts.push(bind("/dev/shm", &shm, "rprivate", false));
    for (destination, source) in [
        ("/etc/hosts", &files.hosts),
        ("/etc/hostname", &files.hostname),
        ("/etc/resolv.conf", &files.resolv_conf),
    ] {
        if let Some(source) = source {
            mounts.push(bind(destination, source, "rprivate", false));
        }
    }
    if let Some((source, destination)) = &files.termination_log {
        mounts.push(bind(destination, source, "rprivate", false));
    }
    mounts
}

/// The container's `volumeMounts` as bind mounts of the prepared volume paths, sorted so that a
/// parent is mounted before what is mounted inside it.
pub fn volumes(
    container: &Container,
    volume_paths: &[(String, PathBuf)],
) -> Result<Vec<Mount>, String> {
    let mut mounts = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let Some((_, source)) = volume_paths.iter().find(|(name, _)| name == &vm.name) else {
            return Err(format!(
                "volumeMount {} names no volume of the pod",
                vm.name
            ));
        };
        let destination = Path::new(&vm.mount_path);
        if !destination.is_absolute() || has_parent_refs(destination) {
            return Err(format!(
                "volumeMount {}: mountPath {:?} must be an absolute path without '..'",
                vm.name, vm.mount_path
            ));
        }
        let mut source = source.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let sub = Path::new(sub);
            if sub.is_absolute() || has_parent_refs(sub) {
                return Err(format!(
                    "volumeMount {}: subPath {:?} must be a relative path without '..'",
                    vm.name,
                    sub.display()
                ));
            }
            source.push(sub);
        }
        // The kubelet's mountPropagation: None → rprivate, HostToContainer → rslave,
        // Bidirectional → rshared.
        let propagation = match vm.mount_propagation.as_deref() {
            Some("HostToContainer") => "rslave",
            Some("Bidirectional") => "rshared",
            _ => "rprivate",
        };
        mounts.push(bind(
            &vm.mount_path,
            &source,
            propagation,
            vm.read_only.unwrap_or(false),
        ));
    }
    mounts.sort_by_key(|m| m.destination().components().count());
    Ok(mounts)
}

fn has_parent_refs(path: &Path) -> bool {
    path.components().any(|c| c == Component::ParentDir)
}

/// Defaults first, then the volumes; a volume at a default's destination replaces it, and a
/// volume at `/dev` replaces every default below `/dev/`.
pub fn merge(defaults: Vec<Mount>, volumes: Vec<Mount>) -> Vec<Mount> {
    let dev_replaced = volumes.iter().any(|v| v.destination() == Path::new("/dev"));
    let mut merged: Vec<Mount> = defaults
        .into_iter()
        .filter(|d| !volumes.iter().any(|v| v.destination() == d.destination()))
        .filter(|d| !(dev_replaced && d.destination().starts_with("/dev")))
        .collect();
    merged.extend(volumes);
    merged
}
