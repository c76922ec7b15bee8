//! Starting the agent so that it outlives `boot init`: a systemd unit (`boot-agent.service`) where
//! systemd is the init system, otherwise a detached daemon (`setsid`, pid file under `/run/boot`,
//! log under `/var/log/boot`). Touches those files and, for systemd, `/etc/systemd/system`.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::config::AgentMode;
use crate::host::layout::{AGENT_LOG, PID_FILE, UNIT_FILE, UNIT_NAME};
use crate::host::ledger::AgentLaunch;
use crate::host::{write_all, HostRoot, RenderedFile};

/// `auto` becomes systemd when systemd runs this (real) root, else a detached daemon.
pub fn resolve_mode(mode: AgentMode, root: &HostRoot) -> AgentMode {
    match mode {
        AgentMode::Auto if root.is_system() && Path::new("/run/systemd/system").is_dir() => {
            AgentMode::Systemd
        }
        AgentMode::Auto => AgentMode::Detach,
        other => other,
    }
}

/// The `boot agent` command line for this root and configuration.
pub fn agent_args(root: &HostRoot, config: &Path) -> Vec<String> {
    let mut args = vec![
        "agent".to_string(),
        "--config".to_string(),
        config.display().to_string(),
    ];
    if !root.is_system() {
        args.extend(["--root".to_string(), root.prefix().display().to_string()]);
    }
    args
}

/// What `start` will do, for the ledger (recorded before starting) and `--dry-run`.
pub fn launch_record(mode: AgentMode, root: &HostRoot) -> AgentLaunch {
    match mode {
        AgentMode::Systemd => AgentLaunch::Systemd {
            unit: UNIT_NAME.into(),
            unit_file: root.path(UNIT_FILE),
        },
        AgentMode::Foreground => AgentLaunch::Foreground,
        _ => AgentLaunch::Detached {
            pid_file: root.path(PID_FILE),
            log_file: root.path(AGENT_LOG),
        },
    }
}

/// The systemd unit that runs the agent.
pub fn unit_file(exe: &Path, args: &[String]) -> String {
    format!(
        "# Written by `boot init`; removed by `boot reset`.\n[Unit]\nDescription=boot static pod agent\nDocumentation=https://kubernetes.io/docs/reference/setup-tools/kubeadm/\nAfter=network-online.target\nWants=network-online.target\n\n[Service]\nExecStart={} {}\nRestart=always\nRestartSec=1\n# Stopping the agent leaves the control-plane pods running; `boot reset` stops them.\nKillMode=process\n\n[Install]\nWantedBy=multi-user.target\n",
        exe.display(),
        args.join(" ")
    )
}

/// Starts the agent detached: a new session, output to the log file, its pid in the pid file.
pub fn start_detached(exe: &Path, root: &HostRoot, args: &[String]) -> io::Result<u32> {
    let log_path = root.path(AGENT_LOG);
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Never through a symlink planted where the log goes.
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&log_path)?;
    let mut command = Command::new(exe);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; it detaches the agent from init's terminal and group.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(|_| ()).map_err(io::Error::from));
    }
    let child = command.spawn()?;
    let pid = child.id();
    write_all(&[RenderedFile::new(
        root.path(PID_FILE),
        0o644,
        format!("{pid}\n"),
    )])
    .map_err(|e| e.source)?;
    Ok(pid)
}

/// Writes the unit and enables and starts it.
pub fn start_systemd(exe: &Path, root: &HostRoot, args: &[String]) -> io::Result<PathBuf> {
    let path = root.path(UNIT_FILE);
    write_all(&[RenderedFile::new(path.clone(), 0o644, unit_file(exe, args))])
        .map_err(|e| e.source)?;
    for step in [&["daemon-reload"][..], &["enable", "--now", UNIT_NAME]] {
        let status = Command::new("systemctl").args(step).status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "systemctl {} failed: {status}",
                step.join(" ")
            )));
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_is_detach_under_a_root_and_args_carry_it() {
        let root = HostRoot::under("/tmp/r").unwrap();
        assert_eq!(resolve_mode(AgentMode::Auto, &root), AgentMode::Detach);
        assert_eq!(
            resolve_mode(AgentMode::Foreground, &root),
            AgentMode::Foreground
        );
        let args = agent_args(&root, Path::new("/tmp/r/var/lib/boot/config.yaml"));
        assert_eq!(
            args,
            [
                "agent",
                "--config",
                "/tmp/r/var/lib/boot/config.yaml",
                "--root",
                "/tmp/r"
            ]
        );
        let unit = unit_file(Path::new("/usr/local/bin/boot"), &args);
        assert!(
            unit.contains("ExecStart=/usr/local/bin/boot agent --config")
                && unit.contains("KillMode=process")
        );
    }
}
