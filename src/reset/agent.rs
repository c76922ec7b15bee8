//! Finding and stopping boot's own processes for one root: the agent (a systemd unit, a detached
//! daemon, or running inside `boot init --agent=foreground`) and log relays still running once the
//! pods are stopped.
//!
//! A process is boot's when `/proc/PID/exe` is this boot binary (the same file, or the same path
//! for a binary replaced on disk since it started) and it serves this root: the agent holds the
//! root's status socket (or names the root and `agent` on its command line, for a pid file), a
//! relay writes under the root's pod log directory. Every signal goes through a pidfd opened
//! *before* the process is identified, so a pid reused in between is never signalled.
//!
//! Reads `/proc/net/unix`, `/proc/PID/{exe,cmdline,fd}`, the pid file `<root>/run/boot/agent.pid`.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::host::layout::{PID_FILE, STATUS_SOCKET};
use crate::host::ledger::AgentLaunch;
use crate::host::HostRoot;

/// How long the agent gets to stop on SIGTERM before SIGKILL.
const AGENT_GRACE: Duration = Duration::from_secs(10);
/// How long relays get to drain and exit on their own once the containers are gone.
const RELAY_DRAIN: Duration = Duration::from_secs(2);
/// A pid file holds one number.
const PID_FILE_LIMIT: u64 = 64;

/// Stops the agent serving `root`, however it was started.
pub async fn stop_agent(launch: Option<&AgentLaunch>, root: &HostRoot, out: &mut Vec<String>) {
    if let Some(AgentLaunch::Systemd { unit, .. }) = launch {
        // Under `--root` the unit file is not where systemd reads units: there is nothing to ask
        // the host's systemd about.
        if root.is_system() {
            let _ = std::process::Command::new("systemctl")
                .args(["disable", "--now", unit.as_str()])
                .status();
            let _ = std::process::Command::new("systemctl")
                .arg("daemon-reload")
                .status();
            out.push(format!("[reset] Stopped and disabled {unit}"));
        }
    }
    let socket = root.path(STATUS_SOCKET);
    let mut candidates = socket_holders(&socket);
    candidates.extend(pid_file(&root.path(PID_FILE)));
    candidates.sort_unstable();
    candidates.dedup();
    let me = std::process::id() as i32;
    for pid in candidates.into_iter().filter(|pid| *pid != me) {
        let Some(process) = Pidfd::open(pid) else {
            continue;
        };
        // Identified after the pidfd is open: the pidfd cannot then point at a reused pid.
        if !(is_boot(pid) && (holds_socket(pid, &socket) || names_agent_root(pid, root))) {
            continue;
        }
        process.signal(libc::SIGTERM);
        if !process.exited_within(AGENT_GRACE).await {
            process.signal(libc::SIGKILL);
            process.exited_within(Duration::from_secs(2)).await;
        }
        out.push(format!("[reset] Stopped the agent (pid {pid})"));
    }
}

/// Stops the log relays still writing under `root`'s pod logs once their containers are gone
/// (a relay exits by itself when every writer of its pipes has; a stray grandchild can keep one).
pub async fn stop_relays(root: &HostRoot, out: &mut Vec<String>) {
    let logs = root.path("/var/log/pods");
    let is_relay = |pid: i32| is_boot(pid) && relay_file(pid).is_some_and(|f| f.starts_with(&logs));
    // Checked again once the pidfd is open: only then is the pid pinned to one process.
    let relays: Vec<(i32, Pidfd)> = all_pids()
        .into_iter()
        .filter(|pid| is_relay(*pid))
        .filter_map(|pid| Some((pid, Pidfd::open(pid)?)))
        .filter(|(pid, _)| is_relay(*pid))
        .collect();
    // One drain period for all of them, not one each.
    let deadline = tokio::time::Instant::now() + RELAY_DRAIN;
    for (pid, relay) in relays {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !relay.exited_within(left).await {
            relay.signal(libc::SIGTERM);
            relay.exited_within(Duration::from_secs(2)).await;
            out.push(format!("[reset] Stopped the log relay (pid {pid})"));
        }
    }
}

/// A process handle that stays bound to one process (`pidfd_open`, Linux 5.3).
struct Pidfd(OwnedFd);

impl Pidfd {
    fn open(pid: i32) -> Option<Pidfd> {
        // SAFETY: plain system call; the result is a new descriptor we own, or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        // SAFETY: a non-negative result is a fresh descriptor.
        (fd >= 0).then(|| Pidfd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: plain system call on a descriptor we own.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
    }

    /// A pidfd becomes readable when its process exits.
    async fn exited_within(&self, limit: Duration) -> bool {
        let Ok(fd) = self.0.try_clone() else {
            return false;
        };
        // SAFETY: the AsyncFd owns `fd`, so it stays open for as long as it is registered.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        };
        let Ok(readable) = registered else {
            return false;
        };
        tokio::time::timeout(limit, readable.readable())
            .await
            .is_ok()
    }
}

/// `/proc/PID/exe` is this binary: the same file, or the same path (a binary upgraded on disk
/// shows as `<path> (deleted)` in the processes that still run the old one).
fn is_boot(pid: i32) -> bool {
    let exe = format!("/proc/{pid}/exe");
    let same_file = match (std::fs::metadata(&exe), std::fs::metadata("/proc/self/exe")) {
        (Ok(theirs), Ok(mine)) => theirs.dev() == mine.dev() && theirs.ino() == mine.ino(),
        _ => false,
    };
    let strip = |p: PathBuf| {
        let text = p.into_os_string().into_vec();
        let text = text
            .strip_suffix(b" (deleted)")
            .map(<[u8]>::to_vec)
            .unwrap_or(text);
        OsString::from_vec(text)
    };
    same_file
        || match (
            std::fs::read_link(&exe),
            std::fs::read_link("/proc/self/exe"),
        ) {
            (Ok(theirs), Ok(mine)) => strip(theirs) == strip(mine),
            _ => false,
        }
}

fn cmdline(pid: i32) -> Vec<OsString> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| OsString::from_vec(a.to_vec()))
        .collect()
}

/// The value of `--name VALUE` or `--name=VALUE` in `args`.
fn flag_value(args: &[OsString], name: &str) -> Option<PathBuf> {
    let long = format!("--{name}");
    let joined = format!("--{name}=");
    args.iter().enumerate().find_map(|(i, arg)| {
        let arg = arg.to_str()?;
        if arg == long {
            args.get(i + 1).map(PathBuf::from)
        } else {
            arg.strip_prefix(&joined).map(PathBuf::from)
        }
    })
}

/// The command line runs `agent` (anywhere: global flags may come first) for this root.
fn names_agent_root(pid: i32, root: &HostRoot) -> bool {
    let args = cmdline(pid);
    let runs_agent = args.iter().skip(1).any(|a| a == "agent");
    let served = flag_value(&args, "root").map_or_else(HostRoot::system, |dir| {
        HostRoot::under(dir).unwrap_or_else(|_| HostRoot::system())
    });
    runs_agent && served == *root
}

/// The log file of a `boot log-relay --file F`.
fn relay_file(pid: i32) -> Option<PathBuf> {
    let args = cmdline(pid);
    args.iter()
        .skip(1)
        .any(|a| a == "log-relay")
        .then(|| flag_value(&args, "file"))
        .flatten()
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn pid_file(path: &Path) -> Option<i32> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(PID_FILE_LIMIT)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok().filter(|pid| *pid > 0)
}

/// The inodes of the unix sockets bound to `path` (`/proc/net/unix`: `… Inode Path`).
fn socket_inodes(path: &Path) -> Vec<u64> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.len() >= 8 && Path::new(fields[7]) == path)
                .then(|| fields[6].parse().ok())
                .flatten()
        })
        .collect()
}

fn holds_any(pid: i32, inodes: &[u64]) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| {
            target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
                .is_some_and(|inode: u64| inodes.contains(&inode))
        })
}

fn holds_socket(pid: i32, socket: &Path) -> bool {
    holds_any(pid, &socket_inodes(socket))
}

/// Every process holding the status socket open (the agent, whichever way it was started).
fn socket_holders(socket: &Path) -> Vec<i32> {
    let inodes = socket_inodes(socket);
    if inodes.is_empty() {
        return Vec::new();
    }
    all_pids()
        .into_iter()
        .filter(|pid| holds_any(*pid, &inodes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_found_wherever_they_are() {
        let args: Vec<OsString> = ["boot", "--root", "/tmp/r", "agent", "--file=/x/0.log"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(flag_value(&args, "root"), Some(PathBuf::from("/tmp/r")));
        assert_eq!(flag_value(&args, "file"), Some(PathBuf::from("/x/0.log")));
        assert_eq!(flag_value(&args, "config"), None);
    }

    #[test]
    fn this_process_is_boots_own_binary_and_others_are_not() {
        let me = std::process::id() as i32;
        assert!(is_boot(me));
        let mut sleep = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!is_boot(sleep.id() as i32));
        let _ = sleep.kill();
        let _ = sleep.wait();
    }

    #[tokio::test]
    async fn the_holder_of_a_listening_socket_is_found_and_a_pidfd_sees_the_exit() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let me = std::process::id() as i32;
        assert!(socket_holders(&socket).contains(&me));
        assert!(holds_socket(me, &socket));

        let mut sleep = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pidfd = Pidfd::open(sleep.id() as i32).unwrap();
        assert!(!pidfd.exited_within(Duration::from_millis(50)).await);
        pidfd.signal(libc::SIGTERM);
        assert!(pidfd.exited_within(Duration::from_secs(5)).await);
        let _ = sleep.wait();
    }
}
