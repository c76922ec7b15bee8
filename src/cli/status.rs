//! `boot status`: the agent and every static pod — phase, ready, restarts, pid, start time, and
//! for a pod that is not healthy one line saying why (with `-v` also its last log lines).
//! Exits 0 only when every pod is running and ready; says so plainly when no agent answers.

use std::io::Write;

use clap::Args;

use super::{CliError, ExitCode, GlobalArgs};
use crate::agent::status::{self, AgentStatus, ContainerState, PodPhase, StatusClientError};
use crate::runtime::logs::files::{read_messages, tail};

/// Log lines `-v` shows for an unhealthy pod.
const VERBOSE_LOG_LINES: usize = 10;

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Output format: the table (default) or json.
    #[arg(short, long, value_name = "FORMAT", default_value = "table")]
    pub output: String,
}

pub fn run(args: StatusArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let socket = root.path("/run/boot/agent.sock");
    let status = status::fetch_blocking(&socket).map_err(|e| match e {
        StatusClientError::NotRunning { .. } => {
            CliError::new(ExitCode::AgentDown, "the agent is not running")
                .with_cause(e)
                .with_hint("start it with `boot agent` (or `boot init`)")
        }
        other => CliError::new(ExitCode::AgentDown, "the agent did not answer").with_cause(other),
    })?;
    match args.output.as_str() {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&status).unwrap_or_default()
        ),
        "table" => {
            print_table(&status, global.verbose > 0);
            print_certificates(&root.path(crate::certs::auto::STATE_FILE));
        }
        other => {
            return Err(CliError::usage(
                format!("-o {other}: unknown output format"),
                "use -o json or the default table",
            ))
        }
    }
    Ok(if status.all_healthy() {
        ExitCode::Ok
    } else {
        ExitCode::Unhealthy
    })
}

fn print_table(status: &AgentStatus, verbose: bool) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "agent: pid {}, node {}, runtime {}, watching {}, since {}",
        status.agent_pid,
        status.node_name,
        if status.runtime.is_empty() {
            "process"
        } else {
            &status.runtime
        },
        status.manifest_dir.display(),
        short_time(&status.started_at)
    );
    if let Some(api) = &status.api {
        let _ = writeln!(out, "{}", api_sync_line(api, &status.node_name));
    }
    for warning in &status.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    let _ = writeln!(
        out,
        "{:<40} {:<10} {:<6} {:<9} {:<8} {:<15} STARTED",
        "POD", "PHASE", "READY", "RESTARTS", "PID", "IP"
    );
    for pod in &status.pods {
        let phase = if pod.terminating {
            "Stopping".to_string()
        } else {
            phase_name(pod.phase).to_string()
        };
        let ready = format!(
            "{}/{}",
            pod.containers.iter().filter(|c| c.ready).count(),
            pod.containers.len()
        );
        let pid = pod
            .pid()
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let started = pod
            .containers
            .iter()
            .find_map(|c| match &c.state {
                ContainerState::Running { started_at, .. } => Some(short_time(started_at)),
                _ => None,
            })
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{:<40} {:<10} {:<6} {:<9} {:<8} {:<15} {started}",
            pod.name,
            phase,
            ready,
            pod.restarts,
            pid,
            pod.pod_ip.as_deref().unwrap_or("-")
        );
        for c in pod.init_containers.iter().chain(&pod.containers) {
            if let Some(line) = image_line(c) {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Some(reason) = &pod.reason {
            let _ = writeln!(out, "  {reason}");
            if verbose {
                print_last_logs(&mut out, pod);
            }
        }
        if !pod.ignored_fields.is_empty() {
            let _ = writeln!(
                out,
                "  warning: the runtime does not apply {}",
                pod.ignored_fields.join(", ")
            );
        }
    }
    for problem in &status.manifest_problems {
        let kept = problem
            .kept_running
            .as_ref()
            .map(|p| format!(" (pod {p} keeps running its last good version)"))
            .unwrap_or_default();
        let _ = writeln!(out, "manifest error: {}{kept}", problem.error);
    }
}

/// `  container web: image 127.0.0.1:5000/web:1 (127.0.0.1:5000/web@sha256:…)` for a container
/// that runs from an image; `None` for a host process.
fn image_line(c: &status::ContainerStatus) -> Option<String> {
    let digest = c.image_id.as_deref()?;
    let image = c.image.as_deref().unwrap_or("-");
    Some(format!("  container {}: image {image} ({digest})", c.name))
}

/// `api: in sync with https://…: node n1 registered, 4/4 mirror pods (since …)`, or what is not.
fn api_sync_line(api: &status::ApiSyncStatus, node: &str) -> String {
    let server = if api.server.is_empty() {
        "the API server".to_string()
    } else {
        api.server.clone()
    };
    let node = if api.node_registered {
        format!("node {node} registered")
    } else {
        format!("node {node} not registered")
    };
    let mirrors = format!("{}/{} mirror pods", api.mirror_pods, api.static_pods);
    let state = if api.in_sync() {
        "in sync"
    } else {
        "NOT in sync"
    };
    let mut line = format!("api: {state} with {server}: {node}, {mirrors}");
    if let Some(at) = &api.last_sync {
        line.push_str(&format!(", last in sync {}", short_time(at)));
    }
    if let Some(error) = &api.last_error {
        line.push_str(&format!("\n  last error: {error}"));
    }
    line
}

/// What automatic certificate renewal last did, when an agent with a configuration runs it.
fn print_certificates(state_file: &std::path::Path) {
    let Some(state) = crate::certs::auto::read_state(state_file) else {
        return;
    };
    let format = |unix: i64| crate::certs::expiry::expires(unix);
    match &state.next_due {
        Some((name, at)) => println!("certificates: next renewal {name} at {}", format(*at)),
        None => println!("certificates: nothing to renew automatically"),
    }
    if let Some((name, at)) = state.renewed.last() {
        println!("  last renewed {name} at {}", format(*at));
    }
    for warning in &state.ca_warnings {
        println!("  warning: {warning}");
    }
    if let Some(error) = &state.last_error {
        println!("  renewal failed (retried at the next check): {error}");
    }
}

fn print_last_logs(out: &mut impl Write, pod: &status::PodStatus) {
    let container = pod
        .containers
        .iter()
        .chain(&pod.init_containers)
        .find(|c| !c.ready)
        .or(pod.containers.first());
    let Some(container) = container else { return };
    let mut path = container.log_path.clone();
    // While in back-off the current file does not exist yet: show the last run's.
    if !path.exists() && container.restart_count > 0 {
        path.set_file_name(format!("{}.log", container.restart_count - 1));
    }
    let Ok(messages) = read_messages(&path) else {
        return;
    };
    for line in tail(messages, VERBOSE_LOG_LINES) {
        let _ = writeln!(out, "    | {}", String::from_utf8_lossy(&line));
    }
}

fn phase_name(phase: PodPhase) -> &'static str {
    match phase {
        PodPhase::Pending => "Pending",
        PodPhase::Running => "Running",
        PodPhase::Succeeded => "Succeeded",
        PodPhase::Failed => "Failed",
    }
}

/// `2024-01-02T03:04:05.123Z` → `2024-01-02T03:04:05Z`.
fn short_time(rfc3339: &str) -> String {
    match rfc3339.split_once('.') {
        Some((head, _)) => format!("{head}Z"),
        None => rfc3339.to_string(),
    }
}
