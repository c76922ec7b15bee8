//! Running one CNI plugin (spec §2): the binary named by `type` in the CNI bin dirs, the
//! `CNI_*` environment, the request on stdin, the result on stdout. Plugins are trusted no more
//! than any input: their output is bounded, they get a deadline (then their process group is
//! killed), and a failure is decoded from the spec's error JSON (`code`, `msg`, `details`).

use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// A result is a few KiB; more than this is a misbehaving plugin.
pub const MAX_OUTPUT_BYTES: u64 = 1 << 20;
/// How much of a plugin's stderr (its log) is kept for an error message.
const MAX_STDERR_BYTES: u64 = 16 << 10;
/// The longest a plugin may take. The CNI spec sets none; bridge and portmap wait on the iptables
/// lock and host-local on its flock, so this is generous, yet bounded, because the agent waits.
pub const PLUGIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Check,
    Del,
}

impl fmt::Display for CniCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CniCommand::Add => "ADD",
            CniCommand::Check => "CHECK",
            CniCommand::Del => "DEL",
        })
    }
}

/// The environment of one call.
#[derive(Debug, Clone)]
pub struct CniEnv<'a> {
    pub command: CniCommand,
    pub container_id: &'a str,
    /// Empty for a DEL whose namespace is gone (the spec allows it).
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub args: &'a str,
    pub bin_dirs: &'a [PathBuf],
}

/// Why a plugin call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginFailure {
    NotFound {
        dirs: String,
    },
    Spawn(String),
    /// The spec's error object.
    Cni {
        code: u64,
        msg: String,
        details: String,
    },
    /// A non-zero exit without an error object.
    Exit {
        status: String,
        stderr: String,
    },
    TimedOut(Duration),
    Output(String),
}

impl fmt::Display for PluginFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginFailure::NotFound { dirs } => write!(
                f,
                "not found in {dirs} (hint: install the CNI plugins, e.g. Debian's containernetworking-plugins)"
            ),
            PluginFailure::Spawn(e) => write!(f, "cannot be started: {e}"),
            PluginFailure::Cni { code, msg, details } => {
                write!(f, "error {code} ({}): {msg}", code_meaning(*code))?;
                if !details.is_empty() {
                    write!(f, ": {details}")?;
                }
                Ok(())
            }
            PluginFailure::Exit { status, stderr } if stderr.is_empty() => write!(f, "{status}"),
            PluginFailure::Exit { status, stderr } => write!(f, "{status}: {stderr}"),
            PluginFailure::TimedOut(limit) => {
                write!(f, "did not finish within {}s and was killed", limit.as_secs())
            }
            PluginFailure::Output(problem) => write!(f, "{problem}"),
        }
    }
}

/// The spec's well-known error codes (§5).
fn code_meaning(code: u64) -> &'static str {
    match code {
        1 => "incompatible CNI version",
        2 => "unsupported field in network configuration",
        3 => "container unknown or does not exist",
        4 => "invalid necessary environment variables",
        5 => "I/O failure",
        6 => "failed to decode content",
        7 => "invalid network config",
        11 => "try again later",
        50 | 51 => "plugin not available",
        100.. => "plugin-specific error",
        _ => "reserved code",
    }
}

/// The plugin binary: the first `dir/type` that is a file. `plugin_type` is a checked plain name.
pub fn find_plugin(bin_dirs: &[PathBuf], plugin_type: &str) -> Option<PathBuf> {
    bin_dirs
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|path| path.is_file())
}

/// Runs `plugin_type` with `stdin`; its stdout (the result, possibly empty) on success.
pub fn run_plugin(
    plugin_type: &str,
    env: &CniEnv<'_>,
    stdin: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, PluginFailure> {
    let dirs = std::env::join_paths(env.bin_dirs)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let binary = find_plugin(env.bin_dirs, plugin_type)
        .ok_or(PluginFailure::NotFound { dirs: dirs.clone() })?;
    let netns = env
        .netns
        .map(|p| p.as_os_str().to_owned())
        .unwrap_or_default();
    let mut child = Command::new(&binary)
        .env_clear()
        // Plugins run helpers (iptables, ip6tables, modprobe) from PATH.
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CNI_COMMAND", env.command.to_string())
        .env("CNI_CONTAINERID", env.container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", env.ifname)
        .env("CNI_ARGS", env.args)
        .env("CNI_PATH", &dirs)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so a timeout kills the iptables it may be waiting on too.
        .process_group(0)
        .spawn()
        .map_err(|e| PluginFailure::Spawn(format!("{}: {e}", binary.display())))?;
    let pid = child.id() as i32;
    let mut input = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let request = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(input) = input.as_mut() {
            // A plugin that exits without reading its config closes the pipe: not our error.
            let _ = input.write_all(&request);
        }
    });
    let out_reader = std::thread::spawn(move || bounded_read(stdout, MAX_OUTPUT_BYTES));
    let err_reader = std::thread::spawn(move || bounded_read(stderr, MAX_STDERR_BYTES));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(timeout) {
        Ok(status) => status.map_err(|e| PluginFailure::Spawn(e.to_string()))?,
        Err(_) => {
            // The child is not reaped until the waiting thread sees it die, so the pid (and the
            // group it leads) is still ours to signal.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = rx.recv();
            return Err(PluginFailure::TimedOut(timeout));
        }
    };
    let _ = writer.join();
    let (stdout, over) = out_reader.join().unwrap_or_default();
    let (stderr, _) = err_reader.join().unwrap_or_default();
    if over {
        return Err(PluginFailure::Output(format!(
            "wrote more than {MAX_OUTPUT_BYTES} bytes on stdout"
        )));
    }
    if status.success() {
        return Ok(stdout);
    }
    Err(decode_failure(&stdout, &stderr, &status.to_string()))
}

/// Reads up to `limit` bytes, then drains the rest so the writer never blocks; `true` when there
/// was more.
fn bounded_read(pipe: Option<impl Read>, limit: u64) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut bytes = Vec::new();
    let _ = (&mut pipe).take(limit).read_to_end(&mut bytes);
    let rest = io::copy(&mut pipe, &mut io::sink()).unwrap_or(0);
    (bytes, rest > 0)
}

/// The spec's error object from stdout when there is one, else the exit status and stderr.
pub fn decode_failure(stdout: &[u8], stderr: &[u8], status: &str) -> PluginFailure {
    if let Ok(Value::Object(error)) = serde_json::from_slice::<Value>(stdout) {
        if let Some(code) = error.get("code").and_then(Value::as_u64) {
            let text = |key: &str| {
                error
                    .get(key)
                    .and_then(Value::as_str)
                    .map(one_line)
                    .unwrap_or_default()
            };
            return PluginFailure::Cni {
                code,
                msg: text("msg"),
                details: text("details"),
            };
        }
    }
    let log = String::from_utf8_lossy(stderr);
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    PluginFailure::Exit {
        status: status.to_string(),
        stderr: one_line(last),
    }
}

/// A message for a one-line status: control characters out, length bounded.
fn one_line(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = cleaned.trim();
    match trimmed.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn env<'a>(dirs: &'a [PathBuf]) -> CniEnv<'a> {
        CniEnv {
            command: CniCommand::Add,
            container_id: "abc",
            netns: Some(Path::new("/run/netns/x")),
            ifname: "eth0",
            args: "IgnoreUnknown=1",
            bin_dirs: dirs,
        }
    }

    #[test]
    fn a_plugin_gets_the_environment_and_stdin() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "echoer",
            r#"printf '{"env":"%s %s %s %s %s","in":' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS"; cat; printf '}'"#,
        );
        let dirs = vec![dir.path().join("missing"), dir.path().to_path_buf()];
        let out = run_plugin("echoer", &env(&dirs), br#"{"a":1}"#, PLUGIN_TIMEOUT).unwrap();
        let value: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["env"], "ADD abc /run/netns/x eth0 IgnoreUnknown=1");
        assert_eq!(value["in"]["a"], 1);
    }

    #[test]
    fn failures_are_decoded() {
        let dir = tempfile::tempdir().unwrap();
        script(
            dir.path(),
            "cnierr",
            r#"echo '{"cniVersion":"1.0.0","code":7,"msg":"bad subnet","details":"10.0.0.0/33"}'; exit 1"#,
        );
        script(dir.path(), "crash", "echo 'panic: boom' >&2; exit 2");
        let dirs = vec![dir.path().to_path_buf()];
        let cni = run_plugin("cnierr", &env(&dirs), b"{}", PLUGIN_TIMEOUT).unwrap_err();
        assert_eq!(
            cni.to_string(),
            "error 7 (invalid network config): bad subnet: 10.0.0.0/33"
        );
        let crash = run_plugin("crash", &env(&dirs), b"{}", PLUGIN_TIMEOUT).unwrap_err();
        assert_eq!(crash.to_string(), "exit status: 2: panic: boom");
        let missing = run_plugin("nope", &env(&dirs), b"{}", PLUGIN_TIMEOUT).unwrap_err();
        assert!(
            matches!(missing, PluginFailure::NotFound { .. }),
            "{missing}"
        );
    }

    #[test]
    fn a_hanging_plugin_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "hang", "exec sleep 60");
        let dirs = vec![dir.path().to_path_buf()];
        let started = std::time::Instant::now();
        let failure =
            run_plugin("hang", &env(&dirs), b"{}", Duration::from_millis(300)).unwrap_err();
        assert_eq!(failure, PluginFailure::TimedOut(Duration::from_millis(300)));
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn endless_output_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "flood", "head -c 3000000 /dev/zero");
        let dirs = vec![dir.path().to_path_buf()];
        let failure = run_plugin("flood", &env(&dirs), b"{}", PLUGIN_TIMEOUT).unwrap_err();
        assert!(failure.to_string().contains("more than"), "{failure}");
    }
}
