//! Runs `boot init`: renders everything in memory, records it in the ledger, then writes and
//! acts phase by phase, printing kubeadm-style `[phase] …` lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::agent_launch::{self, resolve_mode};
use super::phases::PhaseName;
use super::wait::{self, WaitFailure, WaitRequest};
use crate::config::{AgentMode, Config};
use crate::host::ledger::Ledger;
use crate::host::{write_all, HostRoot, RenderedFile, WriteError};
use crate::preflight::{self, PreflightReport};
use crate::render::{self, OutputLayout, Parts, RenderError, Templates, COMPONENTS};

/// Where boot keeps the effective configuration of an init (the agent and reset read it).
pub const EFFECTIVE_CONFIG: &str = "/var/lib/boot/config.yaml";

pub struct InitRequest<'a> {
    pub cfg: &'a Config,
    pub root: &'a HostRoot,
    pub templates: &'a Templates,
    pub skip: Vec<PhaseName>,
    pub dry_run: bool,
    pub ignore_preflight: Vec<String>,
    pub agent_mode: AgentMode,
    /// The `boot` executable the agent runs as.
    pub exe: PathBuf,
    /// A terminal: live progress lines.
    pub live: bool,
    /// Pull the control-plane images in preflight (when the agent's runtime runs images).
    pub pull_images: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("preflight checks failed")]
    Preflight(PreflightReport),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot record {path}: {source}")]
    Ledger {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the agent: {0}")]
    Agent(std::io::Error),
    #[error("the control plane did not become healthy")]
    Wait(WaitFailure),
    #[error("post-boot: {0}")]
    PostBoot(String),
    #[error(transparent)]
    Images(#[from] crate::image::ImageError),
}

impl InitRequest<'_> {
    fn runs(&self, phase: PhaseName) -> bool {
        !self.skip.contains(&phase)
    }
}

/// The effective configuration as YAML documents, for the agent and for reset.
pub fn effective_config(cfg: &Config) -> String {
    let docs = [
        serde_yaml::to_string(&cfg.init),
        serde_yaml::to_string(&cfg.cluster),
        serde_yaml::to_string(&cfg.boot),
    ];
    let mut text = docs
        .into_iter()
        .map(|d| d.expect("configuration serializes"))
        .collect::<Vec<_>>()
        .join("---\n");
    if cfg.static_pod_path != "/etc/kubernetes/manifests" {
        text.push_str(&format!("---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: {}\n", cfg.static_pod_path));
    }
    text
}

/// Runs init. The future completes when the control plane is healthy and post-boot is done.
pub async fn run(request: &InitRequest<'_>, out: &mut dyn Write) -> Result<Duration, InitError> {
    let start = Instant::now();
    let InitRequest {
        cfg,
        root,
        templates,
        ..
    } = *request;
    macro_rules! say { ($($t:tt)*) => {{ let _ = writeln!(out, $($t)*); }} }
    say!(
        "[init] Using Kubernetes version: v{} (etcd {})",
        cfg.kubernetes_version,
        cfg.etcd_version
    );

    if request.runs(PhaseName::Preflight) {
        say!("[preflight] Running pre-flight checks");
        let report = preflight::run(cfg, root, &request.ignore_preflight);
        if !report.errors.is_empty() {
            return Err(InitError::Preflight(report));
        }
        if !report.warnings.is_empty() {
            say!("{report}");
        }
        if request.pull_images && !request.dry_run {
            super::images::pull_step(cfg, root, out).await?;
        }
    }

    // Everything is rendered before anything is written.
    let layout = OutputLayout::host(cfg, root);
    let parts = Parts {
        pki: request.runs(PhaseName::Certs),
        kubeconfigs: request.runs(PhaseName::Kubeconfig),
        components: COMPONENTS,
    };
    let mut bundle = render::bundle(cfg, root, templates, &layout, parts, SystemTime::now())?;
    bundle.files.retain(|f| {
        let is_manifest = f.path.starts_with(&layout.manifest_dir);
        let is_etcd = f.path.file_name().is_some_and(|n| n == "etcd.yaml");
        !is_manifest
            || request.runs(if is_etcd {
                PhaseName::Etcd
            } else {
                PhaseName::ControlPlane
            })
    });
    let config_file = RenderedFile::new(root.path(EFFECTIVE_CONFIG), 0o600, effective_config(cfg));
    let mode = resolve_mode(request.agent_mode, root);
    let agent_args = agent_launch::agent_args(root, &config_file.path);

    if request.dry_run {
        say!("[dry-run] Would write these files (nothing is written):");
        for file in bundle.files.iter().chain(std::iter::once(&config_file)) {
            say!("[dry-run]   {:o} {}", file.mode, file.path.display());
        }
        if request.runs(PhaseName::Agent) {
            say!(
                "[dry-run] Would start the agent ({mode:?}): {} {}",
                request.exe.display(),
                agent_args.join(" ")
            );
        }
        say!("[dry-run] Would then wait for the control plane and run post-boot");
        return Ok(start.elapsed());
    }

    let mut ledger = Ledger::load(root)
        .map_err(|source| InitError::Ledger {
            path: Ledger::path(root),
            source,
        })?
        .unwrap_or_default();
    note_everything(&mut ledger, cfg, root, &bundle.files, &config_file);
    if request.runs(PhaseName::Agent) {
        ledger.agent = Some(agent_launch::launch_record(mode, root));
    }
    save(&ledger, root)?;

    for warning in &bundle.warnings {
        say!("[init] WARNING: {warning}");
    }
    write_all(std::slice::from_ref(&config_file))?;
    // Written phase by phase, each announced with kubeadm's lines (skipped phases rendered none).
    let lines = render::progress_lines(&bundle, &layout);
    let say_tagged = |out: &mut dyn Write, tags: &[&str]| {
        for line in lines
            .iter()
            .filter(|l| tags.iter().any(|t| l.starts_with(t)))
        {
            let _ = writeln!(out, "{line}");
        }
    };
    say_tagged(out, &["[certs]"]);
    write_all(&files_where(&bundle.files, |f| {
        f.path.starts_with(&layout.cert_dir)
    }))?;
    say_tagged(out, &["[kubeconfig]"]);
    write_all(&files_where(&bundle.files, |f| {
        f.path.parent() == Some(layout.kubernetes_dir.as_path())
    }))?;
    let manifests = files_where(&bundle.files, |f| f.path.starts_with(&layout.manifest_dir));
    say_tagged(out, &["[etcd]", "[control-plane]"]);
    write_all(&manifests)?;

    if request.runs(PhaseName::Agent) {
        say!(
            "[agent] Starting the static pod agent ({})",
            match mode {
                AgentMode::Systemd => "systemd unit boot-agent.service",
                _ => "detached daemon",
            }
        );
        start_agent(mode, request, root, &agent_args)?;
    }
    if request.runs(PhaseName::WaitControlPlane) {
        let timeout = cfg.init.timeouts.control_plane_component_health_check.0;
        say!("[control-plane-check] Waiting for healthy control plane components. This can take up to {}", crate::config::GoDuration(timeout));
        let mut manifest_paths: Vec<PathBuf> = COMPONENTS
            .iter()
            .map(|c| layout.manifest_dir.join(format!("{c}.yaml")))
            .collect();
        manifest_paths.retain(|p| p.exists());
        let waited = wait::wait(
            WaitRequest {
                manifests: manifest_paths,
                status_socket: &root.path("/run/boot/agent.sock"),
                default_host: cfg.advertise_address.to_string(),
                timeout,
                live: request.live,
            },
            out,
        )
        .await
        .map_err(InitError::Wait)?;
        let _ = writeln!(
            out,
            "[control-plane-check] All control plane components are healthy after {:.3}s",
            waited.as_secs_f64()
        );
    }
    if request.runs(PhaseName::PostBoot) {
        let timeout = cfg.init.timeouts.kubernetes_api_call.0;
        let lines = crate::postboot::run(&layout.kubernetes_dir, &cfg.cluster, timeout)
            .await
            .map_err(|e| InitError::PostBoot(e.to_string()))?;
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    Ok(start.elapsed())
}

fn files_where(files: &[RenderedFile], keep: impl Fn(&RenderedFile) -> bool) -> Vec<RenderedFile> {
    files.iter().filter(|f| keep(f)).cloned().collect()
}

fn save(ledger: &Ledger, root: &HostRoot) -> Result<(), InitError> {
    ledger.save(root).map_err(|source| InitError::Ledger {
        path: Ledger::path(root),
        source,
    })
}

/// Records every file, directory and tree init and its pods will create, before creating them.
fn note_everything(
    ledger: &mut Ledger,
    cfg: &Config,
    root: &HostRoot,
    files: &[RenderedFile],
    config_file: &RenderedFile,
) {
    ledger.note_files(root, files);
    ledger.note_files(root, std::slice::from_ref(config_file));
    let ledger_file = RenderedFile::new(Ledger::path(root), 0o600, Vec::new());
    ledger.note_files(root, std::slice::from_ref(&ledger_file));
    if let Some(local) = cfg.local_etcd() {
        ledger.note_tree(root, &root.path(&local.data_dir));
    }
    for dir in ["/var/lib/boot", "/run/boot", "/var/log/boot"] {
        ledger.note_tree(root, &root.path(dir));
    }
    // Inside /var/lib/boot, listed on its own so that `reset --keep-images` can keep it.
    ledger.note_tree(root, &root.path(crate::image::STORE_PATH));
    // Pod logs: boot owns the whole directory when it creates it; an existing one (another
    // kubelet's) is left alone.
    let pod_logs = root.path("/var/log/pods");
    if !pod_logs.exists() {
        ledger.note_tree(root, &pod_logs);
    }
    for file in files
        .iter()
        .filter(|f| f.path.extension().is_some_and(|e| e == "yaml"))
    {
        for dir in host_path_volumes(&file.bytes) {
            ledger.note_dir(root, &dir);
        }
    }
    ledger.ports.extend(
        preflight::component_ports(cfg)
            .into_iter()
            .map(|(_, port)| port),
    );
}

/// The `DirectoryOrCreate` hostPath volumes of a manifest: the agent creates them when missing.
fn host_path_volumes(manifest: &[u8]) -> Vec<PathBuf> {
    let Ok(pod) = serde_yaml::from_slice::<k8s_openapi::api::core::v1::Pod>(manifest) else {
        return vec![];
    };
    pod.spec
        .and_then(|s| s.volumes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.host_path)
        .filter(|h| h.type_.as_deref() == Some("DirectoryOrCreate"))
        .map(|h| PathBuf::from(h.path))
        .collect()
}

fn start_agent(
    mode: AgentMode,
    request: &InitRequest<'_>,
    root: &HostRoot,
    args: &[String],
) -> Result<(), InitError> {
    match mode {
        AgentMode::Systemd => agent_launch::start_systemd(&request.exe, root, args).map(|_| ()),
        // Foreground: the CLI runs the agent itself around init; nothing to start here.
        AgentMode::Foreground => Ok(()),
        AgentMode::Detach | AgentMode::Auto => {
            agent_launch::start_detached(&request.exe, root, args).map(|_| ())
        }
    }
    .map_err(InitError::Agent)
}

/// Where `admin.conf` is, for the closing message.
pub fn admin_conf(root: &HostRoot) -> PathBuf {
    root.path(Path::new("/etc/kubernetes/admin.conf"))
}
