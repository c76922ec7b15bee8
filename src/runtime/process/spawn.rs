//! Forking a container process. Everything the child needs is prepared before the fork (paths as
//! C strings, the cgroup.procs and netns files opened), because after a fork in a multithreaded
//! program only async-signal-safe calls are allowed. In the child, in order: a new session (process
//! group leader, no controlling terminal), join the cgroups (writing `0` to `cgroup.procs` moves
//! the writer), join the pod's network namespace, the private mount namespace with the bind
//! mounts, `workingDir`, then drop to `runAsGroup`/`supplementalGroups`/`runAsUser` last, since
//! the steps before need root (std's `Command::uid` would drop privileges before `pre_exec`
//! runs), and finally `PR_SET_NO_NEW_PRIVS` for `allowPrivilegeEscalation: false`.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Stdio;

use super::binds::BindMount;
use super::command::ProcessSpec;
use super::security::ProcessIdentity;

/// What the child does between fork and exec.
#[derive(Debug, Default)]
pub struct ChildSetup {
    /// Opened `cgroup.procs` files of the container's cgroups.
    pub cgroup_procs: Vec<OwnedFd>,
    /// The pod's network namespace file.
    pub netns: Option<OwnedFd>,
    pub mounts: Vec<BindMount>,
    pub identity: ProcessIdentity,
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other(format!("{} contains NUL", path.display())))
}

fn check(result: libc::c_int) -> io::Result<()> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Spawns the container process with stdout/stderr going to the given pipe ends.
pub fn spawn_container(
    spec: &ProcessSpec,
    setup: ChildSetup,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> io::Result<tokio::process::Child> {
    let mounts: Vec<(CString, CString, bool)> = setup
        .mounts
        .iter()
        .map(|m| Ok((c_path(&m.source)?, c_path(&m.target)?, m.read_only)))
        .collect::<io::Result<_>>()?;
    let working_dir = c_path(&spec.working_dir)?;
    let cgroup_fds: Vec<i32> = setup.cgroup_procs.iter().map(|fd| fd.as_raw_fd()).collect();
    let netns_fd = setup.netns.as_ref().map(|fd| fd.as_raw_fd());
    let identity = setup.identity.prepare();

    let mut command = tokio::process::Command::new(&spec.program);
    command
        .arg0(&spec.argv[0])
        .args(&spec.argv[1..])
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    // SAFETY: the closure only makes async-signal-safe system calls on data prepared before the
    // fork (no allocation, no locks).
    unsafe {
        command.pre_exec(move || {
            check(libc::setsid())?;
            for fd in &cgroup_fds {
                if libc::write(*fd, b"0".as_ptr().cast(), 1) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some(fd) = netns_fd {
                check(libc::setns(fd, libc::CLONE_NEWNET))?;
            }
            if !mounts.is_empty() {
                check(libc::unshare(libc::CLONE_NEWNS))?;
                // Mounts made from now on must not propagate back to the host.
                let root = c"/";
                check(libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ))?;
                for (source, target, read_only) in &mounts {
                    let flags = libc::MS_BIND | libc::MS_REC;
                    check(libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        std::ptr::null(),
                        flags,
                        std::ptr::null(),
                    ))?;
                    if *read_only {
                        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                        check(libc::mount(
                            std::ptr::null(),
                            target.as_ptr(),
                            std::ptr::null(),
                            flags,
                            std::ptr::null(),
                        ))?;
                    }
                }
            }
            check(libc::chdir(working_dir.as_ptr()))?;
            identity.apply()?;
            Ok(())
        });
    }
    let child = command.spawn();
    drop(setup);
    child
}
