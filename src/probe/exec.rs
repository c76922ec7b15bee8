//! `exec` probes (`pkg/probe/exec`): the command runs inside the container through the runtime
//! ([`Runtime::exec_sync`](crate::runtime::Runtime::exec_sync), as the kubelet goes through the
//! CRI's `ExecSync`); success is exit status 0, a failure carries the first 10 KB of the combined
//! output, or Go's exit text when there is none. [`check`] runs a command on the host with a
//! given environment through the same executor, for callers that have no container.

use std::time::Duration;

use nix::sys::signal::Signal;

use super::run::ProbeResult;
use crate::runtime::process::exec::{exec, ExecSetup};
use crate::runtime::{ExecEnd, ExecOutput};

pub use crate::host::lookup::DEFAULT_PATH;
pub use crate::runtime::EXEC_OUTPUT_LIMIT as MAX_OUTPUT;

/// Runs `command` on the host with exactly `env` as its environment (`PATH` defaulting to
/// [`DEFAULT_PATH`]).
pub async fn check(command: &[String], env: &[(String, String)], timeout: Duration) -> ProbeResult {
    let setup = ExecSetup {
        env: env.to_vec(),
        ..ExecSetup::default()
    };
    result(command, &exec(command, setup, timeout).await)
}

/// The probe result of an exec, with the kubelet's messages.
pub fn result(command: &[String], output: &ExecOutput) -> ProbeResult {
    let text = String::from_utf8_lossy(&output.output)
        .trim_end()
        .to_string();
    let failure = |fallback: String| {
        ProbeResult::Failure(if text.is_empty() {
            fallback
        } else {
            text.clone()
        })
    };
    match &output.end {
        ExecEnd::Exited(0) => ProbeResult::Success,
        ExecEnd::Exited(code) => failure(format!("exit status {code}")),
        ExecEnd::Signaled(signal) => failure(signal_text(*signal)),
        // The kubelet's message when ExecProbeTimeout is on (the default since 1.20).
        ExecEnd::TimedOut => {
            ProbeResult::Failure(format!("command {:?} timed out", command.join(" ")))
        }
        ExecEnd::CannotStart(message) => ProbeResult::Failure(format!("exec: {message}")),
    }
}

/// Go's `ExitError` text for a signal: "signal: killed".
fn signal_text(signal: i32) -> String {
    match Signal::try_from(signal) {
        Ok(Signal::SIGKILL) => "signal: killed".into(),
        Ok(s) => format!("signal: {}", s.as_str()),
        Err(_) => format!("signal: {signal}"),
    }
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

    use nix::sys::signal::killpg;
    use nix::unistd::Pid;

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
    async fn background_leftovers_do_not_hold_the_probe_nor_outlive_it() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pgid");
        let begun = Instant::now();
        let script = format!("echo $$ > {}; sleep 30 & exit 0", pid_file.display());
        let result = check(&sh(&script), &[], LONG).await;
        assert_eq!(result, ProbeResult::Success);
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "took {:?}",
            begun.elapsed()
        );
        let pgid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let _guard = GroupGuard(Some(pgid));
        let deadline = Instant::now() + Duration::from_secs(5);
        while live_members(pgid) > 0 {
            assert!(
                Instant::now() < deadline,
                "the background sleep outlived the probe"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
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
