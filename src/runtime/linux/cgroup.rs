//! Per-container cgroups: each container gets its own cgroup so that its `resources.limits` apply
//! and stopping it reaches every process it started, even ones that left its process group.
//!
//! Layout: v2 (unified, `/sys/fs/cgroup` is cgroup2) → `/sys/fs/cgroup/<parent>/pod<uid>/<container>-<restart>`
//! at the hierarchy root, because v2's no-internal-processes rule forbids nesting under the agent's
//! own populated cgroup. v1 → the same path in each of the `memory`, `cpu` and `pids` hierarchies,
//! nested under the agent's own cgroup there (so a supervisor that accounts for the agent also
//! accounts for its pods). Limits follow the kubelet: memory limit in bytes, CPU quota =
//! millicores × 100 µs per 100 ms period (minimum 1 ms), shares from the request (kubelet
//! `MilliCPUToShares`, minimum 2).
//!
//! Touches: `/sys/fs/cgroup/**` (outside `--root`: cgroups are kernel state).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::ResourceRequirements;

use super::quantity;

/// CFS period the kubelet uses (`QuotaPeriod`, 100 ms).
const CPU_PERIOD_US: u64 = 100_000;
/// The kubelet's `MinQuotaPeriod` (1 ms).
const MIN_QUOTA_US: u64 = 1_000;
/// The kubelet's `MinShares`.
const MIN_SHARES: u64 = 2;
/// v1 controllers the agent uses.
const V1_CONTROLLERS: [&str; 3] = ["memory", "cpu", "pids"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// The unified hierarchy's mount point and the parent directory below it.
    V2 { parent: PathBuf },
    /// One parent directory per controller hierarchy.
    V1 { parents: Vec<PathBuf> },
}

/// Resource limits as cgroup values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpu_quota_us: Option<u64>,
    pub cpu_shares: Option<u64>,
}

impl Limits {
    pub fn from_resources(resources: Option<&ResourceRequirements>) -> Limits {
        let Some(resources) = resources else {
            return Limits::default();
        };
        let get =
            |map: &Option<
                std::collections::BTreeMap<
                    String,
                    k8s_openapi::apimachinery::pkg::api::resource::Quantity,
                >,
            >,
             key: &str| map.as_ref().and_then(|m| m.get(key)).map(|q| q.0.clone());
        let memory_bytes = get(&resources.limits, "memory")
            .and_then(|q| quantity::parse_whole(&q))
            .map(clamp);
        let cpu_limit = get(&resources.limits, "cpu")
            .and_then(|q| quantity::parse_milli(&q))
            .map(clamp);
        let cpu_request = get(&resources.requests, "cpu")
            .and_then(|q| quantity::parse_milli(&q))
            .map(clamp);
        Limits {
            memory_bytes,
            cpu_quota_us: cpu_limit.map(|m| (m * CPU_PERIOD_US / 1000).max(MIN_QUOTA_US)),
            // As the kubelet: without a request, the limit is the request.
            cpu_shares: cpu_request
                .or(cpu_limit)
                .map(|m| (m * 1024 / 1000).max(MIN_SHARES)),
        }
    }
}

fn clamp(v: u128) -> u64 {
    u64::try_from(v).unwrap_or(u64::MAX)
}

impl CgroupLayout {
    /// Finds the cgroup hierarchies and the agent's place in them; `None` without usable cgroups.
    pub fn detect(parent_name: &str) -> Option<CgroupLayout> {
        let root = Path::new("/sys/fs/cgroup");
        let own = fs::read_to_string("/proc/self/cgroup").ok()?;
        if nix::sys::statfs::statfs(root).ok()?.filesystem_type()
            == nix::sys::statfs::CGROUP2_SUPER_MAGIC
        {
            return Some(CgroupLayout::V2 {
                parent: root.join(parent_name),
            });
        }
        let mut parents = Vec::new();
        for controller in V1_CONTROLLERS {
            let mount = root.join(controller);
            if !mount.join("cgroup.procs").exists() {
                return None;
            }
            let own_path = own_v1_path(&own, controller).unwrap_or_default();
            parents.push(
                mount
                    .join(own_path.trim_start_matches('/'))
                    .join(parent_name),
            );
        }
        Some(CgroupLayout::V1 { parents })
    }

    /// The cgroup directories of one run of a container. Each run gets its own
    /// (`<name>-<restart>-<run>`) so that cleaning up after one run can never reach into the next,
    /// not even when an edited manifest that sets `metadata.uid` starts the same container name
    /// with restart count 0 again while the old run is still being cleaned up.
    pub fn container_dirs(
        &self,
        pod_uid: &str,
        container: &str,
        restart_count: u32,
    ) -> Vec<PathBuf> {
        let run = run_id();
        let leaf = |parent: &PathBuf| {
            parent
                .join(format!("pod{pod_uid}"))
                .join(format!("{container}-{restart_count}-{run}"))
        };
        match self {
            CgroupLayout::V2 { parent } => vec![leaf(parent)],
            CgroupLayout::V1 { parents } => parents.iter().map(leaf).collect(),
        }
    }

    /// Creates the container's cgroups (fresh: leftovers are emptied first) and applies limits.
    pub fn create(&self, dirs: &[PathBuf], limits: Limits) -> io::Result<()> {
        for dir in dirs {
            if dir.exists() {
                kill_all(dir);
            }
            fs::create_dir_all(dir)?;
        }
        match self {
            CgroupLayout::V2 { parent } => {
                // Enable the controllers down the path from the hierarchy root.
                let mut at = parent.parent().map(Path::to_path_buf).unwrap_or_default();
                for part in dirs[0]
                    .strip_prefix(&at)
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default()
                    .components()
                {
                    let _ = fs::write(at.join("cgroup.subtree_control"), "+memory +cpu +pids");
                    at.push(part);
                }
                let dir = &dirs[0];
                if let Some(bytes) = limits.memory_bytes {
                    fs::write(dir.join("memory.max"), bytes.to_string())?;
                }
                if let Some(quota) = limits.cpu_quota_us {
                    fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))?;
                }
                if let Some(shares) = limits.cpu_shares {
                    // The kubelet's shares → weight conversion for cgroup v2.
                    let weight = 1 + (shares.saturating_sub(2) * 9999) / 262_142;
                    fs::write(dir.join("cpu.weight"), weight.to_string())?;
                }
            }
            CgroupLayout::V1 { .. } => {
                for dir in dirs {
                    let controller = controller_of(dir);
                    if controller == Some("memory") {
                        if let Some(bytes) = limits.memory_bytes {
                            fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
                        }
                    }
                    if controller == Some("cpu") {
                        if let Some(quota) = limits.cpu_quota_us {
                            fs::write(dir.join("cpu.cfs_period_us"), CPU_PERIOD_US.to_string())?;
                            fs::write(dir.join("cpu.cfs_quota_us"), quota.to_string())?;
                        }
                        if let Some(shares) = limits.cpu_shares {
                            fs::write(dir.join("cpu.shares"), shares.to_string())?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The controller a v1 cgroup directory belongs to (the directory right under /sys/fs/cgroup).
fn controller_of(dir: &Path) -> Option<&str> {
    dir.strip_prefix("/sys/fs/cgroup")
        .ok()?
        .components()
        .next()?
        .as_os_str()
        .to_str()
}

/// The agent's own path in a v1 hierarchy, from `/proc/self/cgroup` lines `id:controllers:path`.
fn own_v1_path<'a>(proc_self_cgroup: &'a str, controller: &str) -> Option<&'a str> {
    proc_self_cgroup.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then_some(path)
    })
}

/// The pids in a cgroup directory.
pub fn pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILL to every process in the cgroup: `cgroup.kill` on v2 when the kernel has it (5.14+),
/// else each listed process through a checked pidfd, never a bare pid.
pub fn kill_all(dir: &Path) {
    if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    super::proc::signal_cgroup_members(dir, nix::sys::signal::Signal::SIGKILL);
}

impl CgroupLayout {
    /// Whether `dir` is a container cgroup this layout creates (`<parent>/pod<uid>/<leaf>`,
    /// nothing else): a recorded handle naming any other directory is not acted on.
    pub fn owns(&self, dir: &Path) -> bool {
        let parents: Vec<&PathBuf> = match self {
            CgroupLayout::V2 { parent } => vec![parent],
            CgroupLayout::V1 { parents } => parents.iter().collect(),
        };
        parents.iter().any(|parent| {
            let Ok(rest) = dir.strip_prefix(parent) else {
                return false;
            };
            let parts: Vec<&str> = rest.iter().filter_map(|p| p.to_str()).collect();
            parts.len() == 2
                && parts[0].starts_with("pod")
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && *p != ".." && *p != "." && !p.contains('/'))
        })
    }
}

/// Removes a container's cgroup and its pod directory when that is empty; `false` while processes
/// (or zombies not yet reaped) remain.
pub fn remove(dirs: &[PathBuf]) -> bool {
    let mut all = true;
    for dir in dirs {
        if dir.exists() && fs::remove_dir(dir).is_err() {
            all = false;
            continue;
        }
        if let Some(pod_dir) = dir.parent() {
            let _ = fs::remove_dir(pod_dir); // fails while other containers of the pod remain
            if let Some(parent) = pod_dir.parent() {
                let _ = fs::remove_dir(parent); // `…/boot`: fails while other pods remain
            }
        }
    }
    all
}

/// A short id unique to this run of a container: the clock's low nanosecond bits and a counter
/// of this process, in hex.
fn run_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:02x}", nanos & 0xffff_ffff, count & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_kubelet() {
        let resources: ResourceRequirements =
            serde_yaml::from_str("{limits: {memory: 64Mi, cpu: 500m}, requests: {cpu: 250m}}")
                .unwrap();
        let limits = Limits::from_resources(Some(&resources));
        assert_eq!(limits.memory_bytes, Some(64 << 20));
        assert_eq!(limits.cpu_quota_us, Some(50_000));
        assert_eq!(limits.cpu_shares, Some(256));
        let tiny: ResourceRequirements = serde_yaml::from_str("{limits: {cpu: 1m}}").unwrap();
        let limits = Limits::from_resources(Some(&tiny));
        assert_eq!(
            (limits.cpu_quota_us, limits.cpu_shares),
            (Some(1000), Some(2))
        );
    }

    #[test]
    fn owns_only_its_container_directories() {
        let layout = CgroupLayout::V2 {
            parent: PathBuf::from("/sys/fs/cgroup/boot"),
        };
        assert!(layout.owns(Path::new("/sys/fs/cgroup/boot/podu1/c-0")));
        for bad in [
            "/sys/fs/cgroup/boot/podu1/../../system.slice",
            "/sys/fs/cgroup/system.slice/x/y",
            "/sys/fs/cgroup/boot/podu1",
            "/sys/fs/cgroup/boot/x/c-0",
        ] {
            assert!(!layout.owns(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn finds_own_v1_path() {
        let text = "4:memory:/process_api/abc\n2:cpu,cpuacct:/x\n0::/";
        assert_eq!(own_v1_path(text, "memory"), Some("/process_api/abc"));
        assert_eq!(own_v1_path(text, "cpu"), Some("/x"));
        assert_eq!(own_v1_path(text, "pids"), None);
        assert_eq!(
            controller_of(Path::new("/sys/fs/cgroup/memory/a/b")),
            Some("memory")
        );
    }
}
