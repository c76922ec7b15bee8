//! wait-control-plane: polls every component's health endpoint directly and the agent's status
//! every 100 ms (kubeadm polls every 500 ms; a poll is a handful of local requests) until all are
//! healthy, a component
//! crash-loops, or `timeouts.controlPlaneComponentHealthCheck` passes. On a terminal it keeps one
//! live line per component; otherwise it prints a line whenever a component changes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::diagnose::{self, Diagnosis};
use super::health::{self, ComponentView, Endpoint, Phase};
use crate::agent::status::{self, AgentStatus};
use crate::probe::ProbeResult;

/// How often the components are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct WaitRequest<'a> {
    pub manifests: Vec<PathBuf>,
    pub status_socket: &'a Path,
    /// The node address: the host of probes that name none.
    pub default_host: String,
    /// Sent with every health check (`kube-probe/<major>.<minor>`, as the agent's probes).
    pub user_agent: String,
    pub timeout: Duration,
    pub live: bool,
}

#[derive(Debug)]
pub enum WaitFailure {
    TimedOut {
        after: Duration,
        diagnoses: Vec<Diagnosis>,
    },
    CrashLoop {
        diagnoses: Vec<Diagnosis>,
    },
    AgentUnreachable {
        socket: PathBuf,
        error: String,
    },
}

/// Waits; returns how long it took.
/// The control-plane-check phase of init and join: waits for every component whose manifest was
/// rendered, with kubeadm's two lines around the wait.
pub async fn control_plane_check(
    cfg: &crate::config::Config,
    root: &crate::host::HostRoot,
    layout: &crate::render::OutputLayout,
    timeout: Duration,
    live: bool,
    out: &mut dyn Write,
) -> Result<Duration, WaitFailure> {
    let _ = writeln!(
        out,
        "[control-plane-check] Waiting for healthy control plane components. This can take up to {}",
        crate::config::GoDuration(timeout)
    );
    let manifests: Vec<PathBuf> = crate::render::COMPONENTS
        .iter()
        .map(|c| layout.manifest_dir.join(format!("{c}.yaml")))
        .filter(|p| p.exists())
        .collect();
    let request = WaitRequest {
        manifests,
        status_socket: &root.path(crate::host::layout::STATUS_SOCKET),
        default_host: cfg.advertise_address.to_string(),
        user_agent: crate::probe::http::user_agent(&cfg.kubernetes_version),
        timeout,
        live,
    };
    let waited = wait(request, out).await?;
    let _ = writeln!(
        out,
        "[control-plane-check] All control plane components are healthy after {:.3}s",
        waited.as_secs_f64()
    );
    Ok(waited)
}

pub async fn wait(request: WaitRequest<'_>, out: &mut dyn Write) -> Result<Duration, WaitFailure> {
    let start = Instant::now();
    let endpoints: Vec<(String, Option<Endpoint>)> = request
        .manifests
        .iter()
        .map(|path| {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (name, Endpoint::from_manifest(path, &request.default_host))
        })
        .collect();
    let mut printed: Vec<String> = Vec::new();
    let mut last_status: Option<AgentStatus> = None;
    loop {
        let status = match status::fetch(request.status_socket).await {
            Ok(status) => Some(status),
            Err(error) if start.elapsed() > Duration::from_secs(10) && last_status.is_none() => {
                return Err(WaitFailure::AgentUnreachable {
                    socket: request.status_socket.to_path_buf(),
                    error: error.to_string(),
                });
            }
            Err(_) => None,
        };
        if status.is_some() {
            last_status = status;
        }
        let answers = futures_join(&endpoints, &request.user_agent).await;
        let views: Vec<ComponentView> = endpoints
            .iter()
            .zip(&answers)
            .map(|((name, _), answer)| {
                health::view(
                    name,
                    last_status.as_ref().and_then(|s| health::pod_of(s, name)),
                    answer.as_ref(),
                )
            })
            .collect();
        show(&views, &mut printed, request.live, out);
        if views.iter().all(|v| v.phase == Phase::Healthy) {
            return Ok(start.elapsed());
        }
        let looping: Vec<&ComponentView> = views
            .iter()
            .filter(|v| v.phase == Phase::CrashLooping)
            .collect();
        if !looping.is_empty() {
            return Err(WaitFailure::CrashLoop {
                diagnoses: looping
                    .into_iter()
                    .map(|v| diagnosis(v, last_status.as_ref()))
                    .collect(),
            });
        }
        if start.elapsed() >= request.timeout {
            let unhealthy = views.iter().filter(|v| v.phase != Phase::Healthy);
            return Err(WaitFailure::TimedOut {
                after: start.elapsed(),
                diagnoses: unhealthy
                    .map(|v| diagnosis(v, last_status.as_ref()))
                    .collect(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Checks every endpoint concurrently; each is bounded well below the poll interval's scale.
async fn futures_join(
    endpoints: &[(String, Option<Endpoint>)],
    user_agent: &str,
) -> Vec<Option<ProbeResult>> {
    let mut tasks = Vec::new();
    for (_, endpoint) in endpoints {
        let endpoint = endpoint.clone();
        let user_agent = user_agent.to_string();
        tasks.push(tokio::spawn(async move {
            match endpoint {
                Some(e) => Some(e.check(Duration::from_secs(2), &user_agent).await),
                None => None,
            }
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap_or(None));
    }
    answers
}

fn diagnosis(view: &ComponentView, status: Option<&AgentStatus>) -> Diagnosis {
    let pod = status.and_then(|s| health::pod_of(s, &view.component));
    let log = pod
        .and_then(|p| p.containers.first())
        .and_then(|c| std::fs::read_to_string(&c.log_path).ok())
        .unwrap_or_default();
    diagnose::diagnose(view, pod, &log)
}

/// Live: rewrite the block of lines in place. Plain: print lines that changed.
fn show(views: &[ComponentView], printed: &mut Vec<String>, live: bool, out: &mut dyn Write) {
    let lines: Vec<String> = views
        .iter()
        .map(|v| format!("[control-plane-check] {}", v.line()))
        .collect();
    if live {
        if !printed.is_empty() {
            let _ = write!(out, "\x1b[{}A", printed.len());
        }
        for line in &lines {
            let _ = writeln!(out, "\x1b[2K{line}");
        }
        *printed = lines;
    } else {
        for (index, line) in lines.iter().enumerate() {
            if printed.get(index) != Some(line) {
                let _ = writeln!(out, "{line}");
            }
        }
        *printed = lines;
    }
    let _ = out.flush();
}
