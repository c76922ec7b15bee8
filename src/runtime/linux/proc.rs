//! What `/proc` says about a process (its start time, whether it is a zombie), watching a process
//! that is not our child for its exit through a pidfd, and signalling only through pidfds: a pid
//! number is opened as a pidfd, then checked (start time, group, cgroup) while the pidfd pins the
//! process, and the signal goes to the pidfd (`pidfd_send_signal`), so a reused pid is never hit.
//!
//! Touches: `/proc/<pid>/stat`, `/proc/<pid>/cgroup` (read only).

use std::fs;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A process pinned by a pidfd and checked to be the one that was meant.
#[derive(Debug)]
pub struct PinnedProcess {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

impl PinnedProcess {
    /// Opens `pid` and checks, once the pidfd pins it, that it is the live process that started
    /// at `start_ticks`.
    pub fn open(pid: i32, start_ticks: u64) -> Option<PinnedProcess> {
        if pid <= 1 {
            return None;
        }
        let pidfd = pidfd_open(pid).ok()?;
        is_same_live_process(pid, start_ticks).then_some(PinnedProcess { pid, pidfd })
    }

    /// Pins a child of this process that has not been reaped yet (its pid cannot have been
    /// reused, even if it already exited), with its start time.
    pub fn own_child(pid: i32) -> Option<(PinnedProcess, u64)> {
        if pid <= 1 {
            return None;
        }
        let pidfd = pidfd_open(pid).ok()?;
        let ticks = stat(pid)?.start_ticks;
        Some((PinnedProcess { pid, pidfd }, ticks))
    }

    /// Sends `signal`; `false` once the process is gone.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> bool {
        pidfd_send_signal(&self.pidfd, signal as i32).is_ok()
    }

    pub fn is_alive(&self) -> bool {
        pidfd_send_signal(&self.pidfd, 0).is_ok()
    }
}

/// `pidfd_send_signal(2)` (Linux 5.1+); signal 0 checks that the process still exists.
pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    let result = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Signals every member of the process group led by `leader` (a container is a session and
/// group leader): the leader through its pidfd, each other member found in `/proc` through a
/// pidfd opened and checked to be in the group while it is pinned. A group ID cannot be reused
/// while the leader or any member lives, and a member is only signalled while the leader is
/// still the recorded process or gone without successor.
pub fn signal_group(leader: &PinnedProcess, leader_start: u64, signal: nix::sys::signal::Signal) {
    leader.signal(signal);
    signal_group_members(leader.pid, leader_start, signal);
}

/// The members of the group `leader_pid` other than the leader itself (which may be gone: they
/// can outlive it), each through a pidfd checked while pinned.
pub fn signal_group_members(leader_pid: i32, leader_start: u64, signal: nix::sys::signal::Signal) {
    if leader_pid <= 1 {
        return;
    }
    for pid in all_pids() {
        if pid == leader_pid || stat(pid).is_none_or(|s| s.pgrp != leader_pid) {
            continue;
        }
        let Ok(pidfd) = pidfd_open(pid) else { continue };
        let still_member = stat(pid).is_some_and(|s| s.pgrp == leader_pid);
        // The group's number belongs to our leader while it or a member lives; if a process
        // with the leader's pid but another start time exists, the number was reused: hands off.
        let leader_ok = stat(leader_pid).is_none_or(|s| s.start_ticks == leader_start);
        if still_member && leader_ok {
            let _ = pidfd_send_signal(&pidfd, signal as i32);
        }
    }
}

/// Signals every process listed in a cgroup's `cgroup.procs`, each through a pidfd opened and
/// checked (its `/proc/<pid>/cgroup` names the same cgroup) while it is pinned.
pub fn signal_cgroup_members(cgroup_dir: &std::path::Path, signal: nix::sys::signal::Signal) {
    let Some(relative) = cgroup_relative_path(cgroup_dir) else {
        return;
    };
    let Ok(text) = fs::read_to_string(cgroup_dir.join("cgroup.procs")) else {
        return;
    };
    for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        if pid <= 1 {
            continue;
        }
        let Ok(pidfd) = pidfd_open(pid) else { continue };
        if is_in_cgroup(pid, &relative) {
            let _ = pidfd_send_signal(&pidfd, signal as i32);
        }
    }
}

/// Whether `/proc/<pid>/cgroup` places the process in the cgroup at `relative` (`/a/b`).
fn is_in_cgroup(pid: i32, relative: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .is_ok_and(|c| c.lines().any(|l| l.splitn(3, ':').nth(2) == Some(relative)))
}

/// Whether the process is in the cgroup directory `dir` (`/sys/fs/cgroup/...`).
pub fn is_member(pid: i32, dir: &std::path::Path) -> bool {
    cgroup_relative_path(dir).is_some_and(|relative| is_in_cgroup(pid, &relative))
}

/// `/sys/fs/cgroup/memory/a/b` → `/a/b` (v1); `/sys/fs/cgroup/a/b` → `/a/b` (v2).
fn cgroup_relative_path(dir: &std::path::Path) -> Option<String> {
    let rest = dir.strip_prefix("/sys/fs/cgroup").ok()?;
    let v1 = [
        "memory", "cpu", "pids", "cpuacct", "cpuset", "blkio", "devices", "freezer",
    ];
    let mut parts = rest.components().peekable();
    let first = parts.peek()?.as_os_str().to_str()?;
    let is_v1 = v1.contains(&first)
        && nix::sys::statfs::statfs(&std::path::Path::new("/sys/fs/cgroup").join(first))
            .is_ok_and(|s| s.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if is_v1 {
        parts.next();
    }
    let tail: std::path::PathBuf = parts.collect();
    Some(format!("/{}", tail.display()))
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The parts of `/proc/<pid>/stat` that identify a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Field 3.
    pub state: char,
    /// Field 5.
    pub pgrp: i32,
    /// Field 22: start time in clock ticks after boot.
    pub start_ticks: u64,
}

pub fn stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a stat line; the command name (field 2) may contain spaces and parentheses, so fields
/// are counted after its last `)`.
pub fn parse_stat(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3.
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// Whether `pid` is still the live process that started at `start_ticks`.
pub fn is_same_live_process(pid: i32, start_ticks: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_ticks == start_ticks && s.state != 'Z' && s.state != 'X')
}

/// A pidfd for `pid` (Linux 5.3+). It stays bound to that process even if the pid is reused.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the syscall returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Resolves when the process behind `pidfd` exits (a pidfd becomes readable then).
pub async fn wait_pidfd(pidfd: OwnedFd) -> io::Result<()> {
    // SAFETY: the OwnedFd is moved into the AsyncFd and stays open and unchanged until it drops.
    let fd = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) }
        .map_err(|e| io::Error::other(e.to_string()))?;
    let _guard = fd.readable().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line =
            "1234 (a b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1000 10";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            stat,
            ProcStat {
                state: 'S',
                pgrp: 1234,
                start_ticks: 98765
            }
        );
    }

    #[test]
    fn pinned_processes_are_signalled_and_a_wrong_start_time_is_refused() {
        let mut child = std::process::Command::new("sleep")
            .arg("1009")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let ticks = stat(pid).unwrap().start_ticks;
        assert!(
            PinnedProcess::open(pid, ticks + 1).is_none(),
            "another start time"
        );
        let pinned = PinnedProcess::open(pid, ticks).unwrap();
        assert!(pinned.is_alive());
        assert!(pinned.signal(nix::sys::signal::Signal::SIGKILL));
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        assert!(
            !pinned.is_alive(),
            "reaped: the pidfd says so, whatever has the pid now"
        );
        assert!(PinnedProcess::open(1, 0).is_none());
    }

    #[test]
    fn own_process_is_live_and_another_start_time_is_not() {
        let me = std::process::id() as i32;
        let own = stat(me).unwrap();
        assert!(is_same_live_process(me, own.start_ticks));
        assert!(!is_same_live_process(me, own.start_ticks + 1));
    }
}
