//! Every host path boot owns, in one table: where init writes, what the ledger may name, what
//! reset falls back on without a ledger, and which directories boot never removes. Paths are host
//! paths (`/etc/kubernetes`); [`super::HostRoot::path`] moves them under `--root`.
//!
//! Pure apart from reading `/etc/passwd` for the home directories ([`Protected::for_host`]).

use std::path::{Path, PathBuf};

use super::{read_bounded, HostRoot, Links};

/// kubeadm's `/etc/kubernetes`: kubeconfigs, and by default the PKI and the manifests.
pub const KUBERNETES_DIR: &str = "/etc/kubernetes";
/// The state directory: the ledger, the effective configuration, the agent's records, journals.
pub const STATE_DIR: &str = "/var/lib/boot";
/// The agent's runtime directory: its status socket, pid file, sandboxes.
pub const RUN_DIR: &str = "/run/boot";
/// boot's own logs (the detached agent's).
pub const LOG_DIR: &str = "/var/log/boot";
/// The effective configuration of an init or join: what the agent runs with.
pub const EFFECTIVE_CONFIG: &str = "/var/lib/boot/config.yaml";
/// The agent's status socket.
pub const STATUS_SOCKET: &str = "/run/boot/agent.sock";
/// The systemd unit that runs the agent.
pub const UNIT_NAME: &str = "boot-agent.service";
/// Where that unit is written.
pub const UNIT_FILE: &str = "/etc/systemd/system/boot-agent.service";
/// The detached agent's pid file.
pub const PID_FILE: &str = "/run/boot/agent.pid";
/// The detached agent's log.
pub const AGENT_LOG: &str = "/var/log/boot/agent.log";

/// The host directories whose content is boot's, whatever the configuration says: a ledger may
/// name paths under these (and under the directories it recorded as boot's).
pub const OWNED: &[&str] = &[
    KUBERNETES_DIR,
    STATE_DIR,
    "/var/lib/etcd",
    RUN_DIR,
    LOG_DIR,
    "/var/log/pods",
    // The API server's audit log (boot's secure default).
    "/var/log/kubernetes/audit",
    // The kubelet's configuration and serving certificate, as kubeadm's kubelet-start writes them.
    "/var/lib/kubelet",
    UNIT_FILE,
];

/// Directories below the top level that a distribution owns; never removed, never emptied.
pub const SYSTEM_DIRS: &[&str] = &[
    "/etc/systemd",
    "/etc/systemd/system",
    "/etc/ssl",
    "/etc/ssl/certs",
    "/etc/pki",
    "/etc/ca-certificates",
    "/run/user",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/share",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/mail",
    "/var/run",
    "/var/spool",
    "/var/tmp",
];

/// `/etc/passwd` is read up to this size for the home directories.
const PASSWD_LIMIT: u64 = 4 << 20;

/// The directories boot never removes on one host: `/`, the root, top-level and system
/// directories, and home directories.
#[derive(Debug, Clone)]
pub struct Protected {
    paths: Vec<PathBuf>,
}

impl Protected {
    /// For `root`, with this host's home directories (from `/etc/passwd`).
    pub fn for_host(root: &HostRoot) -> Protected {
        let passwd =
            read_bounded(Path::new("/etc/passwd"), PASSWD_LIMIT, Links::Follow).unwrap_or_default();
        Protected::with_homes(root, home_dirs(&String::from_utf8_lossy(&passwd)))
    }

    /// For `root`, with the given home directories.
    pub fn with_homes(root: &HostRoot, homes: Vec<PathBuf>) -> Protected {
        // Host paths: under `--root DIR`, `DIR/var` is boot's own creation, not the system's.
        let mut paths: Vec<PathBuf> = vec![PathBuf::from("/"), root.prefix().to_path_buf()];
        paths.extend(SYSTEM_DIRS.iter().map(PathBuf::from));
        paths.extend(homes);
        Protected { paths }
    }

    /// Whether boot must never remove `path`.
    pub fn contains(&self, path: &Path) -> bool {
        let top_level = path.components().count() <= 2;
        top_level
            || self.paths.iter().any(|p| p == path)
            || path.starts_with("/home") && path.components().count() <= 3
    }
}

/// `/`, the root, top-level, system and home directories: reset never removes them, so init
/// never records them.
pub fn never_removed(root: &HostRoot, path: &Path) -> bool {
    Protected::for_host(root).contains(path)
}

/// The home directories in `/etc/passwd` (field 6), except `/` and non-absolute ones.
pub fn home_dirs(passwd: &str) -> Vec<PathBuf> {
    passwd
        .lines()
        .filter_map(|line| line.split(':').nth(5))
        .map(PathBuf::from)
        .filter(|home| home.is_absolute() && home != Path::new("/"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_top_level_and_home_directories_are_protected() {
        let root = HostRoot::under("/tmp/r").unwrap();
        let homes = home_dirs("alice:x:1000:1000::/srv/alice:/bin/sh\nroot:x:0:0::/root:/bin/sh\n");
        let protected = Protected::with_homes(&root, homes);
        for path in [
            "/",
            "/tmp",
            "/tmp/r",
            "/home/bob",
            "/var/lib",
            "/srv/alice",
            "/root",
        ] {
            assert!(protected.contains(Path::new(path)), "{path}");
        }
        for path in ["/etc/kubernetes", "/tmp/r/etc", "/home/bob/x"] {
            assert!(!protected.contains(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn boots_own_files_lie_in_its_own_directories() {
        for file in [
            EFFECTIVE_CONFIG,
            STATUS_SOCKET,
            PID_FILE,
            AGENT_LOG,
            UNIT_FILE,
        ] {
            assert!(
                OWNED.iter().any(|dir| Path::new(file).starts_with(dir)),
                "{file}"
            );
        }
        assert!(UNIT_FILE.ends_with(UNIT_NAME));
    }
}
