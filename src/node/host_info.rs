//! What the Node says about the host (reference §16): logical CPUs, memory, the filesystem of the
//! kubelet directory, the machine, boot and system IDs, kernel, OS image and architecture, and the
//! pressure conditions against the kubelet's default hard-eviction thresholds.
//!
//! Touches (read only): `/proc/meminfo`, `/proc/sys/kernel/{pid_max,osrelease,random/boot_id}`, `/proc`
//! (process count), `/etc/machine-id`, `/var/lib/dbus/machine-id`, `/sys/class/dmi/id/product_uuid`,
//! `/etc/os-release`, and statvfs of the kubelet directory.

use std::path::Path;

/// The kubelet's default `memory.available<100Mi`.
pub const MEMORY_EVICTION: u64 = 100 * 1024 * 1024;
/// Bounded reads: every file here is a line or a few.
const MAX_READ: usize = 64 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostInfo {
    pub cpus: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    pub memory_pressure: bool,
    pub disk_pressure: bool,
    pub pid_pressure: bool,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    pub arch: String,
}

fn read_small(path: &str) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(MAX_READ as u64).read_to_string(&mut text);
    }
    text.trim().to_string()
}

/// The host now; `kubelet_dir` is the directory whose filesystem counts as ephemeral storage.
pub fn read(kubelet_dir: &Path) -> HostInfo {
    let meminfo = read_small("/proc/meminfo");
    let memory_bytes = meminfo_kib(&meminfo, "MemTotal").unwrap_or(0) * 1024;
    let available = meminfo_kib(&meminfo, "MemAvailable").unwrap_or(u64::MAX / 1024) * 1024;
    let (disk_bytes, disk_free) = statvfs(kubelet_dir).unwrap_or((0, 0));
    let pid_max: u64 = read_small("/proc/sys/kernel/pid_max").parse().unwrap_or(0);
    let processes = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .count() as u64
        })
        .unwrap_or(0);
    let machine_id = Some(read_small("/etc/machine-id"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| read_small("/var/lib/dbus/machine-id"));
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(1) as u64;
    HostInfo {
        cpus,
        memory_bytes,
        disk_bytes,
        memory_pressure: available < MEMORY_EVICTION,
        // `nodefs.available<10%`.
        disk_pressure: disk_bytes > 0 && disk_free < disk_bytes / 10,
        // The kubelet has no default PID threshold; boot reports pressure past 90 % of pid_max.
        pid_pressure: pid_max > 0 && processes > pid_max / 10 * 9,
        machine_id,
        system_uuid: read_small("/sys/class/dmi/id/product_uuid"),
        boot_id: read_small("/proc/sys/kernel/random/boot_id"),
        kernel_version: read_small("/proc/sys/kernel/osrelease"),
        os_image: os_image(&read_small("/etc/os-release")),
        arch: go_arch(std::env::consts::ARCH).to_string(),
    }
}

/// A `/proc/meminfo` field in KiB.
pub fn meminfo_kib(meminfo: &str, field: &str) -> Option<u64> {
    meminfo.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// `PRETTY_NAME` of os-release, unquoted; `Linux` when there is none.
pub fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// Go's GOARCH for Rust's target architecture.
pub fn go_arch(rust: &str) -> &str {
    match rust {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// (size, available to unprivileged users) of the filesystem holding `dir` (or its nearest
/// existing parent).
fn statvfs(dir: &Path) -> Option<(u64, u64)> {
    let existing = dir.ancestors().find(|d| d.exists())?;
    let stat = nix::sys::statvfs::statvfs(existing).ok()?;
    let frag = stat.fragment_size() as u64;
    Some((
        stat.blocks() as u64 * frag,
        stat.blocks_available() as u64 * frag,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_host_files() {
        let meminfo = "MemTotal:        8048236 kB\nMemFree:  1 kB\nMemAvailable:    5000000 kB\n";
        assert_eq!(meminfo_kib(meminfo, "MemTotal"), Some(8_048_236));
        assert_eq!(meminfo_kib(meminfo, "MemAvailable"), Some(5_000_000));
        assert_eq!(meminfo_kib(meminfo, "Mem"), None);
        assert_eq!(
            os_image("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n"),
            "Debian GNU/Linux 13 (trixie)"
        );
        assert_eq!(os_image(""), "Linux");
        assert_eq!(go_arch("x86_64"), "amd64");
        let host = read(Path::new("/nonexistent/dir"));
        assert!(host.cpus >= 1 && host.memory_bytes > 0 && host.disk_bytes > 0);
    }
}
