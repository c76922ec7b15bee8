//! The agent's side of `boot oci-shim`: runs the shim for a container and reads its report, runs
//! exec probes through it, and waits for a container's init, which the agent inherits when the
//! shim exits (the agent is a child subreaper), to learn its exit status.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};

use super::shim::{CANNOT_EXEC, CANNOT_EXEC_PREFIX, REPORT_FD, TIMED_OUT};
use crate::runtime::linux::output::{output_pipe, read_capped};
use crate::runtime::linux::proc;
use crate::runtime::{ContainerExit, ExecEnd, ExecOutput};

/// What the shim is told to create.
#[derive(Debug, Clone)]
pub struct CreateRequest<'a> {
    pub shim: &'a Path,
    pub state: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub layers: &'a [PathBuf],
}

/// Runs `boot oci-shim create` with the container's output going to `stdout`/`stderr`; returns
/// the container's pid. Blocks for as long as the shim runs (tens of milliseconds).
pub fn create(
    request: &CreateRequest<'_>,
    stdout: OwnedFd,
    stderr: OwnedFd,
) -> Result<i32, String> {
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| format!("cannot create a pipe: {e}"))?;
    let mut command = Command::new(request.shim);
    command
        .arg("oci-shim")
        .arg("create")
        .arg("--state")
        .arg(request.state)
        .arg("--id")
        .arg(request.id)
        .arg("--bundle")
        .arg(request.bundle);
    for layer in request.layers {
        command.arg("--layer").arg(layer);
    }
    let report_fd = report_write.as_raw_fd();
    command
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    // SAFETY: dup2/fcntl are async-signal-safe; the fd stays open in the parent until spawn returns.
    unsafe {
        command.pre_exec(move || {
            let result = if report_fd == REPORT_FD {
                libc::fcntl(REPORT_FD, libc::F_SETFD, 0)
            } else {
                libc::dup2(report_fd, REPORT_FD)
            };
            if result < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {} oci-shim: {e}", request.shim.display()))?;
    drop(command);
    drop(report_write);
    let mut line = String::new();
    let read = BufReader::new(std::fs::File::from(report_read)).read_line(&mut line);
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the shim: {e}"))?;
    if let Some(pid) = line.trim_end().strip_prefix("pid ") {
        return pid
            .parse()
            .map_err(|_| format!("the shim reported a bad pid {pid:?}"));
    }
    match (line.trim_end().strip_prefix("error "), read) {
        (Some(why), _) => Err(why.to_string()),
        (None, Err(e)) => Err(format!("cannot read the shim's report: {e}")),
        (None, Ok(_)) => Err(format!("the shim ended ({status}) without a report")),
    }
}

/// Runs `command` in the container through `boot oci-shim exec` (libcontainer's tenant exec:
/// the container's namespaces, cgroup, user, capabilities, no_new_privs and environment, and its
/// seccomp profile), as the CRI's
/// `ExecSync`: stdout and stderr combined, the first
/// [`EXEC_OUTPUT_LIMIT`](crate::runtime::EXEC_OUTPUT_LIMIT) bytes kept.
pub async fn exec_sync(
    shim: &Path,
    state: &Path,
    id: &str,
    command: &[String],
    timeout: Duration,
) -> ExecOutput {
    let fail = |message: String| ExecOutput {
        end: ExecEnd::CannotStart(message),
        output: Vec::new(),
    };
    let (reader, writer) = match output_pipe() {
        Ok(pipe) => pipe,
        Err(e) => return fail(format!("output pipe: {e}")),
    };
    let second = match writer.try_clone() {
        Ok(second) => second,
        Err(e) => return fail(format!("output pipe: {e}")),
    };
    let mut cmd = tokio::process::Command::new(shim);
    cmd.arg("oci-shim")
        .arg("exec")
        .arg("--state")
        .arg(state)
        .arg("--id")
        .arg(id)
        .arg("--timeout-ms")
        .arg(timeout.as_millis().to_string())
        .arg("--")
        .args(command)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(second))
        .kill_on_drop(true);
    let spawned = cmd.spawn();
    // Our copies of the pipe's write end must close, or reading never sees EOF.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return fail(format!("cannot run {} oci-shim: {e}", shim.display())),
    };
    let output = tokio::spawn(read_capped(reader));
    // The shim enforces the timeout inside the container; this one only catches a stuck shim.
    let status = match tokio::time::timeout(timeout + SHIM_SLACK, child.wait()).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return fail(format!("cannot wait for the shim: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            output.abort();
            return ExecOutput {
                end: ExecEnd::TimedOut,
                output: Vec::new(),
            };
        }
    };
    let output = output.await.unwrap_or_default();
    match status.code() {
        Some(TIMED_OUT) => ExecOutput {
            end: ExecEnd::TimedOut,
            output: Vec::new(),
        },
        Some(CANNOT_EXEC) if output.starts_with(CANNOT_EXEC_PREFIX.as_bytes()) => {
            fail(String::from_utf8_lossy(&output).trim_end().to_string())
        }
        Some(code) => ExecOutput {
            end: ExecEnd::Exited(code),
            output,
        },
        None => ExecOutput {
            end: ExecEnd::Signaled(
                std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
            ),
            output,
        },
    }
}

/// How much longer than the exec's own timeout the shim may take before it is killed.
const SHIM_SLACK: Duration = Duration::from_secs(2);

/// Resolves with the container's exit once its init ends. The init is the agent's child (it was
/// inherited from the shim), so its status can be collected through the pidfd; a process that is
/// not (an adopted one) ends as [`ContainerExit::Unknown`].
pub async fn wait_exit(pidfd: OwnedFd) -> ContainerExit {
    let Ok(watched) = pidfd.try_clone() else {
        return ContainerExit::Unknown;
    };
    if proc::wait_pidfd(watched).await.is_err() {
        return ContainerExit::Unknown;
    }
    match waitid(Id::PIDFd(pidfd.as_fd()), WaitPidFlag::WEXITED) {
        Ok(WaitStatus::Exited(_, code)) => ContainerExit::Code(code),
        Ok(WaitStatus::Signaled(_, signal, _)) => ContainerExit::Signal(signal as i32),
        _ => ContainerExit::Unknown,
    }
}
