//! Running a command in a process-runtime container (the CRI's `ExecSync`, used by exec probes):
//! the command is a new host process that joins the container's network namespace, gets the
//! container's environment and runs as its user, in a process group of its own. stdout and stderr
//! share one pipe (Go's `CombinedOutput`, which the kubelet uses) and the first
//! [`EXEC_OUTPUT_LIMIT`](crate::runtime::EXEC_OUTPUT_LIMIT) bytes are kept. When the timeout
//! expires, and also once the command exits, the whole group is killed through checked pidfds, so
//! nothing it left in the background outlives it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::process::Command;

use super::security::ProcessIdentity;
use crate::runtime::linux::output::{output_pipe, read_capped};
use crate::runtime::linux::proc::{self, PinnedProcess};
use crate::runtime::{ExecEnd, ExecOutput};

/// Everything the exec'd process needs, prepared before the fork.
#[derive(Debug, Default)]
pub struct ExecSetup {
    pub env: Vec<(String, String)>,
    /// The container's network namespace, `None` in the host network.
    pub netns: Option<OwnedFd>,
    pub identity: ProcessIdentity,
}

/// Runs `command` (its first element looked up in the `PATH` of `setup.env`) and waits up to
/// `timeout`.
pub async fn exec(command: &[String], setup: ExecSetup, timeout: Duration) -> ExecOutput {
    let fail = |message: String| ExecOutput {
        end: ExecEnd::CannotStart(message),
        output: Vec::new(),
    };
    let Some((program, args)) = command.split_first() else {
        return fail("no command".into());
    };
    let path_var = setup
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(crate::host::lookup::DEFAULT_PATH, |(_, v)| v.as_str());
    let dirs = crate::host::lookup::path_dirs(path_var);
    let Some(resolved) = crate::host::lookup::look_path(program, &dirs) else {
        return fail(format!("{program:?}: executable file not found in $PATH"));
    };
    let (reader, writer) = match output_pipe() {
        Ok(pipe) => pipe,
        Err(e) => return fail(format!("{program:?}: output pipe: {e}")),
    };
    let mut cmd = Command::new(&resolved);
    cmd.args(args)
        .env_clear()
        .envs(setup.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    if !setup.env.iter().any(|(k, _)| k == "PATH") {
        cmd.env("PATH", crate::host::lookup::DEFAULT_PATH);
    }
    match writer.try_clone() {
        Ok(second) => cmd.stdout(Stdio::from(writer)).stderr(Stdio::from(second)),
        Err(e) => return fail(format!("{program:?}: output pipe: {e}")),
    };
    cmd.process_group(0).kill_on_drop(true);
    if let Err(e) = join_in_child(&mut cmd, &setup) {
        return fail(format!("{program:?}: {e}"));
    }
    let spawned = cmd.spawn();
    // Our copies of the pipe's write end must close, or reading never sees EOF.
    drop(cmd);
    drop(setup);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return fail(format!("{:?}: {e}", resolved.display().to_string())),
    };
    // Not reaped yet (maybe exited already), so the pid is surely our child's: pin it for the
    // group kill below.
    let leader = child
        .id()
        .and_then(|pid| PinnedProcess::own_child(pid as i32));
    let kill_group = || {
        if let Some((leader, ticks)) = &leader {
            proc::signal_group(leader, *ticks, Signal::SIGKILL);
        }
    };
    let output = tokio::spawn(read_capped(reader));
    let status = tokio::time::timeout(timeout, child.wait()).await;
    kill_group();
    match status {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt;
            let end = match (status.code(), status.signal()) {
                (Some(code), _) => ExecEnd::Exited(code),
                (None, Some(signal)) => ExecEnd::Signaled(signal),
                (None, None) => ExecEnd::Exited(-1),
            };
            let output = output.await.unwrap_or_default();
            ExecOutput { end, output }
        }
        Ok(Err(e)) => fail(format!("{program:?}: wait: {e}")),
        Err(_) => {
            let _ = child.wait().await;
            output.abort();
            ExecOutput {
                end: ExecEnd::TimedOut,
                output: Vec::new(),
            }
        }
    }
}

/// Between fork and exec: the container's network namespace, then its groups and user.
fn join_in_child(cmd: &mut Command, setup: &ExecSetup) -> io::Result<()> {
    let netns = setup.netns.as_ref().map(|fd| fd.as_raw_fd());
    let identity = setup.identity.prepare();
    // SAFETY: only async-signal-safe calls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let check = |r: libc::c_int| {
                if r < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            if let Some(fd) = netns {
                check(libc::setns(fd, libc::CLONE_NEWNET))?;
            }
            identity.apply()?;
            Ok(())
        });
    }
    Ok(())
}

/// The netns file of a sandbox, opened for [`ExecSetup::netns`].
pub fn open_netns(path: Option<&PathBuf>) -> io::Result<Option<OwnedFd>> {
    path.map(|p| std::fs::File::open(p).map(OwnedFd::from))
        .transpose()
        .map_err(|e| io::Error::other(format!("cannot open the network namespace: {e}")))
}
