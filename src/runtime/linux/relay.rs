//! A container's output path: two close-on-exec pipes whose read ends go to the container's log
//! relay (`boot log-relay`, in a session of its own so that signals to the agent or the
//! container leave it alone) and whose write ends become the container's stdout and stderr. The
//! relay exits when both pipes are closed, and a task of the async runtime reaps it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;

/// Where a container's output goes.
#[derive(Debug, Clone, Copy)]
pub struct LogRelay<'a> {
    /// The `boot` executable that runs `boot log-relay`.
    pub exe: &'a Path,
    /// `/var/log/pods/<ns>_<name>_<uid>/<container>/<restartCount>.log`.
    pub log_file: &'a Path,
    pub max_size: u64,
    pub max_files: u32,
}

/// The write ends of a started relay's pipes, for the container's stdout and stderr.
#[derive(Debug)]
pub struct Output {
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Starts the relay; must run inside a Tokio runtime (a task reaps the relay when it exits).
pub fn start(relay: &LogRelay<'_>) -> io::Result<Output> {
    let (out_read, out_write) = pipe()?;
    let (err_read, err_write) = pipe()?;
    let mut child = spawn(relay, out_read, err_read)?;
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    Ok(Output {
        stdout: out_write,
        stderr: err_write,
    })
}

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// The relay with the stdout pipe as its stdin and the stderr pipe as its fd 3.
fn spawn(
    relay: &LogRelay<'_>,
    stdout_read: OwnedFd,
    stderr_read: OwnedFd,
) -> io::Result<tokio::process::Child> {
    let err_fd = stderr_read.as_raw_fd();
    let mut command = tokio::process::Command::new(relay.exe);
    command
        .arg("log-relay")
        .arg("--file")
        .arg(relay.log_file)
        .arg("--max-size")
        .arg(relay.max_size.to_string())
        .arg("--max-files")
        .arg(relay.max_files.to_string())
        .env_clear()
        .stdin(Stdio::from(stdout_read))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let check = |result: libc::c_int| {
        if result < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY: async-signal-safe calls only.
    unsafe {
        command.pre_exec(move || {
            check(libc::setsid())?;
            if err_fd == 3 {
                check(libc::fcntl(3, libc::F_SETFD, 0))?;
            } else {
                check(libc::dup2(err_fd, 3))?;
            }
            Ok(())
        });
    }
    let child = command.spawn();
    drop(stderr_read);
    child
}
