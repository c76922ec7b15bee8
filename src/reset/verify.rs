//! After a reset: is anything init created still there? Files and directories of the plan,
//! processes and cgroups of the recorded pods, the agent, and listening ports.

use std::fmt;
use std::path::{Path, PathBuf};

use super::plan::ResetPlan;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    Path(PathBuf),
    Process {
        pid: i32,
        what: String,
    },
    Port(u16),
    /// Something of boot's pod network: a veth, the bridge, an IPAM allocation, an iptables chain.
    Network(String),
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leftover::Path(path) => write!(f, "{} still exists", path.display()),
            Leftover::Process { pid, what } => write!(f, "process {pid} ({what}) is still running"),
            Leftover::Port(port) => write!(f, "port {port} is still listening"),
            Leftover::Network(what) => write!(f, "{what} is still there"),
        }
    }
}

/// Whether `dir` holds anything but the kept paths and the directories leading to them.
fn has_unkept_entries(dir: &Path, kept: &[PathBuf]) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|entry| {
        let path = entry.path();
        if kept.contains(&path) {
            return false;
        }
        if kept.iter().any(|k| k.starts_with(&path)) {
            return has_unkept_entries(&path, kept);
        }
        true
    })
}

/// Everything of `plan` still present. `pods` are the (pid, start ticks, name) of the containers
/// that were recorded before the reset.
pub fn verify(plan: &ResetPlan, pods: &[(i32, u64, String)], cgroups: &[PathBuf]) -> Vec<Leftover> {
    let mut left = Vec::new();
    let exists = |p: &PathBuf| p.symlink_metadata().is_ok();
    for path in plan
        .files
        .iter()
        .chain(plan.dirs.iter())
        .chain(std::iter::once(&plan.ledger))
    {
        if exists(path) {
            left.push(Leftover::Path(path.clone()));
        }
    }
    for tree in &plan.trees {
        if has_unkept_entries(tree, &plan.kept) {
            left.push(Leftover::Path(tree.clone()));
        }
    }
    for (pid, ticks, name) in pods {
        if crate::runtime::linux::proc::is_same_live_process(*pid, *ticks) {
            left.push(Leftover::Process {
                pid: *pid,
                what: name.clone(),
            });
        }
    }
    for cgroup in cgroups {
        if cgroup.exists() {
            left.push(Leftover::Path(cgroup.clone()));
        }
    }
    let listening = listening_ports();
    for port in &plan.ports {
        if listening.contains(port) {
            left.push(Leftover::Port(*port));
        }
    }
    left
}

/// TCP ports in LISTEN state, from `/proc/net/tcp` and `/proc/net/tcp6` (no connection made).
pub fn listening_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) == Some(&"0A") {
                if let Some(port) = fields
                    .get(1)
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_listening_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listening_ports().contains(&port));
        drop(listener);
        assert!(!listening_ports().contains(&port));
    }
}
