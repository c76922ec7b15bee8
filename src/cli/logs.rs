//! `boot logs POD [-c CONTAINER] [-f] [--tail N] [--previous]`: a static pod's container log, read
//! straight from `/var/log/pods` (so it works while the agent is down). POD is the full name
//! (`etcd-node1`) or the manifest's name (`etcd`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::{CliError, ExitCode, GlobalArgs};
use crate::runtime::logs::files::{
    container_log_path, read_messages, read_new, restart_counts, tail,
};

/// How often `-f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The pod: `<name>-<node>` or `<name>`.
    pub pod: String,
    /// The container (needed when the pod has several).
    #[arg(short, long, value_name = "NAME")]
    pub container: Option<String>,
    /// Keep printing new lines.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// The previous run of the container (before its last restart).
    #[arg(short, long)]
    pub previous: bool,
}

pub fn run(args: LogsArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let log_dir = root.path("/var/log/pods");
    let pod_dir = find_pod_dir(&log_dir, &args.pod)?;
    let container_dir = find_container_dir(&pod_dir, &args.pod, args.container.as_deref())?;
    let counts = restart_counts(&container_dir);
    let index = if args.previous {
        counts.len().checked_sub(2)
    } else {
        counts.len().checked_sub(1)
    };
    let Some(restart) = index.map(|i| counts[i]) else {
        let what = if args.previous {
            "no previous run"
        } else {
            "no log yet"
        };
        return Err(CliError::new(
            ExitCode::Unhealthy,
            format!("pod {}: {what} in {}", args.pod, container_dir.display()),
        ));
    };
    let container = container_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = container_log_path(&pod_dir, &container, restart);
    let messages = read_messages(&path).map_err(|e| {
        CliError::new(ExitCode::Files, format!("cannot read {}", path.display())).with_cause(e)
    })?;
    let messages = match args.tail {
        Some(n) => tail(messages, n),
        None => messages,
    };
    let mut out = std::io::stdout().lock();
    for message in messages {
        let _ = out.write_all(&message);
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
    if args.follow && !args.previous {
        follow(&container_dir, &pod_dir, &container, restart, &mut out);
    }
    Ok(ExitCode::Ok)
}

/// Prints new lines as they come, moving on to the next restart's file when one appears.
fn follow(
    container_dir: &Path,
    pod_dir: &Path,
    container: &str,
    mut restart: u32,
    out: &mut impl Write,
) -> ! {
    let mut path = container_log_path(pod_dir, container, restart);
    let mut offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let mut pending = Vec::new();
    loop {
        if let Ok((messages, next)) = read_new(&path, offset, &mut pending) {
            offset = next;
            for message in messages {
                let _ = out.write_all(&message);
                let _ = out.write_all(b"\n");
            }
            let _ = out.flush();
        }
        if let Some(newer) = restart_counts(container_dir)
            .into_iter()
            .filter(|c| *c > restart)
            .max()
        {
            restart = newer;
            path = container_log_path(pod_dir, container, restart);
            offset = 0;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// The newest `<ns>_<pod>_<uid>` directory whose pod part is `pod` or `pod-<node>`.
fn find_pod_dir(log_dir: &Path, pod: &str) -> Result<PathBuf, CliError> {
    let mut matches: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(log_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let parts: Vec<&str> = name.split('_').collect();
            parts.len() == 3
                && (parts[1] == pod
                    || parts[1]
                        .strip_prefix(pod)
                        .is_some_and(|rest| rest.starts_with('-')))
        })
        .map(|e| {
            (
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
                e.path(),
            )
        })
        .collect();
    matches.sort();
    matches.pop().map(|(_, path)| path).ok_or_else(|| {
        CliError::new(
            ExitCode::Usage,
            format!("no logs for pod {pod} in {}", log_dir.display()),
        )
        .with_hint("`boot status` lists the pods")
    })
}

fn find_container_dir(
    pod_dir: &Path,
    pod: &str,
    container: Option<&str>,
) -> Result<PathBuf, CliError> {
    let mut names: Vec<String> = std::fs::read_dir(pod_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    match container {
        Some(name) if names.iter().any(|n| n == name) => Ok(pod_dir.join(name)),
        Some(name) => Err(CliError::usage(
            format!("pod {pod} has no container {name}"),
            format!("its containers: {}", names.join(", ")),
        )),
        None if names.len() == 1 => Ok(pod_dir.join(&names[0])),
        None if names.is_empty() => Err(CliError::new(
            ExitCode::Unhealthy,
            format!("pod {pod} has no logs yet"),
        )),
        None => Err(CliError::usage(
            format!("pod {pod} has several containers"),
            format!("choose one with -c: {}", names.join(", ")),
        )),
    }
}
