//! `exec` probes: runs the command as a host process with the container's environment; success
//! is exit status 0 (`pkg/probe/exec`). stdout and stderr share one pipe, like Go's
//! `CombinedOutput`, and the first 10 KB become the failure message. The command runs in a
//! process group of its own, which is killed when the timeout expires, and also once the
//! command exits, so that nothing it left in the background outlives the probe.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::run::ProbeResult;

/// The `PATH` a container gets when its environment has none: containerd's default for Linux.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The kubelet keeps at most 10 KB of an exec probe's output (`maxReadLength`).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// Runs `command` (its first element looked up in `PATH` of `env`, else [`DEFAULT_PATH`]) with
/// exactly `env` as its environment.
pub async fn check(command: &[String], env: &[(String, String)], timeout: Duration) -> ProbeResult {
    let Some((program, args)) = command.split_first() else {
        return ProbeResult::Failure("exec: no command".into());
    };
    let path_var = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
    let Some(resolved) = look_path(program, path_var) else {
        return ProbeResult::Failure(format!(
            "exec: {program:?}: executable file not found in $PATH"
        ));
    };
    let (reader, writer) = match output_pipe() {
        Ok(pipe) => pipe,
        Err(e) => return ProbeResult::Failure(format!("exec: {program:?}: output pipe: {e}")),
    };
    let mut cmd = Command::new(&resolved);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    if !env.iter().any(|(k, _)| k == "PATH") {
        cmd.env("PATH", DEFAULT_PATH);
    }
    match writer.try_clone() {
        Ok(second) => cmd.stdout(Stdio::from(writer)).stderr(Stdio::from(second)),
        Err(e) => return ProbeResult::Failure(format!("exec: {program:?}: output pipe: {e}")),
    };
    cmd.process_group(0).kill_on_drop(true);
    let spawned = cmd.spawn();
    // Our copies of the pipe's write end must close, or reading never sees EOF.
    drop(cmd);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return ProbeResult::Failure(format!("exec: {:?}: {e}", resolved.display().to_string()))
        }
    };
    let group = child.id().map(|id| Pid::from_raw(id as i32));
    let kill_group = || {
        if let Some(pgid) = group {
            // ESRCH (nothing left in the group) is the usual case after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    };
    let output = tokio::spawn(read_capped(reader));
    let status = tokio::time::timeout(timeout, child.wait()).await;
    kill_group();
    let status = match status {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return ProbeResult::Failure(format!("exec: {program:?}: wait: {e}")),
        Err(_) => {
            let _ = child.wait().await;
            output.abort();
            // The kubelet's message when ExecProbeTimeout is on (the default since 1.20).
            return ProbeResult::Failure(format!("command {:?} timed out", command.join(" ")));
        }
    };
    let output = output.await.unwrap_or_default();
    if status.success() {
        ProbeResult::Success
    } else {
        let text = String::from_utf8_lossy(&output).trim_end().to_string();
        ProbeResult::Failure(if text.is_empty() {
            exit_text(status)
        } else {
            text
        })
    }
}

/// Go's `ExitError` text: "exit status 1" or "signal: killed".
fn exit_text(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(Signal::SIGKILL) => "signal: killed".into(),
            Ok(s) => format!("signal: {}", s.as_str()),
            Err(_) => format!("signal: {sig}"),
        },
        (None, None) => "exit status unknown".into(),
    }
}

/// Go's `exec.LookPath`: a name with a slash is used as is, else the first executable file of
/// that name in the `PATH` directories.
fn look_path(program: &str, path_var: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let p = PathBuf::from(program);
        return executable(&p).then_some(p);
    }
    path_var
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(program))
        .find(|p| executable(p))
}

/// A close-on-exec pipe: the read end for us, the write end for the child's stdout and stderr.
fn output_pipe() -> std::io::Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((
        tokio::net::unix::pipe::Receiver::from_owned_fd(read)?,
        write,
    ))
}

/// Reads to EOF, keeping the first [`MAX_OUTPUT`] bytes; the rest is drained so the command
/// never blocks on a full pipe.
async fn read_capped(mut reader: tokio::net::unix::pipe::Receiver) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = MAX_OUTPUT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    const LONG: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn exit_zero_is_success() {
        assert_eq!(check(&sh("exit 0"), &[], LONG).await, ProbeResult::Success);
    }

    #[tokio::test]
    async fn failure_carries_combined_output() {
        let result = check(&sh("echo out; echo err >&2; exit 3"), &[], LONG).await;
        assert_eq!(result, ProbeResult::Failure("out\nerr".into()));
    }

    #[tokio::test]
    async fn silent_failure_names_the_exit_status() {
        assert_eq!(
            check(&sh("exit 7"), &[], LONG).await,
            ProbeResult::Failure("exit status 7".into())
        );
    }

    #[tokio::test]
    async fn environment_is_exactly_the_containers() {
        let env = [("PROBE_VAR".to_string(), "hello".to_string())];
        let script = sh(
            r#"[ "$PROBE_VAR" = hello ] && [ -z "$HOME" ] && [ "$PATH" = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" ]"#,
        );
        assert_eq!(check(&script, &env, LONG).await, ProbeResult::Success);
    }

    #[tokio::test]
    async fn missing_program_reads_like_go() {
        let result = check(&["no-such-probe-binary".to_string()], &[], LONG).await;
        assert_eq!(
            result,
            ProbeResult::Failure(
                "exec: \"no-such-probe-binary\": executable file not found in $PATH".into()
            )
        );
    }

    /// Kills the group on drop, so a failing test leaves nothing running.
    struct GroupGuard(Option<i32>);

    impl Drop for GroupGuard {
        fn drop(&mut self) {
            if let Some(pgid) = self.0 {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
            }
        }
    }

    /// Processes of group `pgid` that are not zombies, from `/proc/<pid>/stat`.
    fn live_members(pgid: i32) -> usize {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return 0;
        };
        entries
            .flatten()
            .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
            .filter(|stat| {
                // Fields after the parenthesised command: state ppid pgrp ...
                let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
                let fields: Vec<&str> = rest.split(' ').collect();
                fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
            })
            .count()
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pgid");
        // The shell leads the group; a background child would keep it alive if not killed.
        let script = format!("echo $$ > {}; sleep 30 & sleep 30", pid_file.display());
        let timeout = Duration::from_millis(200);
        let begun = Instant::now();
        let result = check(&sh(&script), &[], timeout).await;
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "took {:?}",
            begun.elapsed()
        );
        let pgid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let _guard = GroupGuard(pgid);
        assert_eq!(
            result,
            ProbeResult::Failure(format!("command \"sh -c {script}\" timed out"))
        );
        let pgid = pgid.expect("the script wrote its pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        while live_members(pgid) > 0 {
            assert!(
                Instant::now() < deadline,
                "processes of the probe's group survived the timeout"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn background_leftovers_do_not_hold_the_probe() {
        let begun = Instant::now();
        let result = check(&sh("sleep 30 & exit 0"), &[], LONG).await;
        assert_eq!(result, ProbeResult::Success);
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "took {:?}",
            begun.elapsed()
        );
    }

    #[tokio::test]
    async fn output_is_capped() {
        let result = check(
            &sh("head -c 50000 /dev/zero | tr '\\0' x; exit 1"),
            &[],
            LONG,
        )
        .await;
        let ProbeResult::Failure(text) = result else {
            panic!("expected failure")
        };
        assert_eq!(text.len(), MAX_OUTPUT);
    }
}
