//! Runs `boot init`: renders everything in memory, records it in the ledger, then writes and
//! acts phase by phase, printing kubeadm-style `[phase] …` lines.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::agent_launch::{self, resolve_mode};
use super::phases::PhaseName;
use super::wait::{self, WaitFailure};
use crate::config::{AgentMode, Config};
use crate::host::ledger::{AgentLaunch, Ledger};
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
    /// What the upload-certs and bootstrap-token phases create for joining nodes.
    pub join: JoinData,
}

/// What init creates for joining nodes.
#[derive(Debug, Clone, Default)]
pub struct JoinData {
    /// The bootstrap tokens (the first is the one the join commands show).
    pub tokens: Vec<crate::join::TokenSpec>,
    /// `--upload-certs`: the key that encrypts the shared certificates.
    pub certificate_key: Option<crate::join::CertificateKey>,
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
    /// Whether `phase` is part of this run.
    pub fn runs(&self, phase: PhaseName) -> bool {
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
    if cfg.static_pod_path != "/etc/kubernetes/manifests"
        || cfg.kubelet_port != crate::node::kubelet_config::DEFAULT_PORT
        || cfg.kubelet_address != "0.0.0.0"
    {
        text.push_str(&format!(
            "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: {}\naddress: {}\nport: {}\n",
            cfg.static_pod_path, cfg.kubelet_address, cfg.kubelet_port
        ));
    }
    text
}

/// What [`prepare`] leaves for [`finish`]: everything is written and recorded.
#[derive(Debug)]
pub struct Prepared {
    start: Instant,
    mode: AgentMode,
    agent_args: Vec<String>,
    layout: OutputLayout,
    /// `/var/lib/kubelet/config.yaml`, written when the agent phase runs.
    kubelet_file: RenderedFile,
}

/// Runs init. The future completes when the control plane is healthy and post-boot is done.
pub async fn run(request: &InitRequest<'_>, out: &mut dyn Write) -> Result<Duration, InitError> {
    let start = Instant::now();
    match prepare(request, out).await? {
        Some(prepared) => finish(request, prepared, out).await,
        None => Ok(start.elapsed()),
    }
}

/// Preflight, rendering, the ledger and the files: everything before the agent starts, so that
/// an agent run inside this process (`--agent=foreground`) binds its ports only after preflight
/// checked them and creates its directories only after the ledger recorded them. `None` for a
/// dry run (which prints the plan instead).
pub async fn prepare(
    request: &InitRequest<'_>,
    out: &mut dyn Write,
) -> Result<Option<Prepared>, InitError> {
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
    // kubeadm's kubelet-start: the kubelet's configuration file, which the agent reads.
    let kubelet_file = crate::node::KubeletConfiguration::for_init(cfg, root).rendered(root);
    let mode = resolve_mode(request.agent_mode, root);
    let agent_args = agent_launch::agent_args(root, &config_file.path);

    if request.dry_run {
        say!("[dry-run] Would write these files (nothing is written):");
        for file in bundle.files.iter().chain([&config_file, &kubelet_file]) {
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
        if request.runs(PhaseName::UploadCerts) && request.join.certificate_key.is_some() {
            say!("[dry-run] Would upload the shared certificates to Secret kube-system/kubeadm-certs");
        }
        if request.runs(PhaseName::BootstrapToken) {
            for spec in &request.join.tokens {
                say!("[dry-run] Would create bootstrap token {}", spec.token.id());
            }
        }
        return Ok(None);
    }

    let mut ledger = Ledger::load(root)
        .map_err(|source| InitError::Ledger {
            path: Ledger::path(root),
            source,
        })?
        .unwrap_or_default();
    if request.runs(PhaseName::Agent) {
        note_kubelet_files(&mut ledger, root, &kubelet_file);
    }
    if request.runs(PhaseName::Agent) {
        ledger.agent = Some(agent_launch::launch_record(mode, root));
    }
    note_everything(&mut ledger, cfg, root, &layout, &bundle.files, &config_file);
    save(&ledger, root)?;

    for warning in &bundle.warnings {
        say!("[init] WARNING: {warning}");
    }
    // kubeadm's lines phase by phase (skipped phases rendered none), then one write: every file
    // is staged before any is renamed into place, so a failure leaves none of them behind.
    for line in render::progress_lines(&bundle, &layout) {
        say!("{line}");
    }
    let mut files = bundle.files;
    files.push(config_file);
    write_all(&files)?;
    Ok(Some(Prepared {
        start,
        mode,
        agent_args,
        layout,
        kubelet_file,
    }))
}

/// Starts the agent (unless it runs in this process), waits for the control plane, post-boot.
pub async fn finish(
    request: &InitRequest<'_>,
    prepared: Prepared,
    out: &mut dyn Write,
) -> Result<Duration, InitError> {
    let Prepared {
        start,
        mode,
        agent_args,
        layout,
        kubelet_file,
    } = prepared;
    let (cfg, root) = (request.cfg, request.root);
    macro_rules! say { ($($t:tt)*) => {{ let _ = writeln!(out, $($t)*); }} }
    if request.runs(PhaseName::Agent) {
        say!(
            "[kubelet-start] Writing kubelet configuration to file {:?}",
            kubelet_file.path.display().to_string()
        );
        write_all(std::slice::from_ref(&kubelet_file))?;
        say!(
            "[agent] Starting the static pod agent ({})",
            match mode {
                AgentMode::Systemd => "systemd unit boot-agent.service",
                AgentMode::Foreground => "in the foreground, inside boot init",
                _ => "detached daemon",
            }
        );
        start_agent(mode, request, root, &agent_args)?;
    }
    if request.runs(PhaseName::WaitControlPlane) {
        let timeout = cfg.init.timeouts.control_plane_component_health_check.0;
        wait::control_plane_check(cfg, root, &layout, timeout, request.live, out)
            .await
            .map_err(InitError::Wait)?;
    }
    if request.runs(PhaseName::PostBoot) {
        let timeout = cfg.init.timeouts.kubernetes_api_call.0;
        let lines = crate::postboot::run(&layout.kubernetes_dir, &cfg.cluster, timeout)
            .await
            .map_err(|e| InitError::PostBoot(e.to_string()))?;
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
        // kubeadm's mark-control-plane, once the agent has registered the Node.
        if layout
            .kubernetes_dir
            .join(crate::node::KUBELET_CONF)
            .exists()
        {
            let lines = crate::node::mark::mark_control_plane(
                &layout.kubernetes_dir,
                &cfg.node_name,
                timeout,
            )
            .await
            .map_err(|e| InitError::PostBoot(format!("{e} (hint: {})", e.hint())))?;
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
    }
    join_phases(request, &layout, out).await?;
    Ok(start.elapsed())
}

/// kubeadm's upload-certs and bootstrap-token phases, in its order.
async fn join_phases(
    request: &InitRequest<'_>,
    layout: &OutputLayout,
    out: &mut dyn Write,
) -> Result<(), InitError> {
    let (cfg, root) = (request.cfg, request.root);
    let timeout = cfg.init.timeouts.kubernetes_api_call.0;
    let failed = |e: crate::postboot::PostBootError| {
        let hint = e
            .hint()
            .map(|h| format!(" (hint: {h})"))
            .unwrap_or_default();
        InitError::PostBoot(format!("{e}{hint}"))
    };
    if request.runs(PhaseName::UploadCerts) {
        match &request.join.certificate_key {
            None => {
                let _ = writeln!(
                    out,
                    "[upload-certs] Skipping phase. Please see --upload-certs"
                );
            }
            Some(key) => {
                let lines = crate::postboot::upload_certs(
                    &layout.kubernetes_dir,
                    &layout.cert_dir,
                    root,
                    cfg,
                    key,
                    timeout,
                )
                .await
                .map_err(failed)?;
                for line in lines {
                    let _ = writeln!(out, "{line}");
                }
                let _ = writeln!(out, "[upload-certs] Using certificate key:\n{key}");
            }
        }
    }
    if request.runs(PhaseName::BootstrapToken) {
        let tokens = crate::postboot::BootstrapTokens {
            tokens: &request.join.tokens,
            now: k8s_openapi::jiff::Timestamp::now(),
        };
        let lines = crate::postboot::bootstrap_token(&layout.kubernetes_dir, cfg, tokens, timeout)
            .await
            .map_err(failed)?;
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }
    Ok(())
}

fn save(ledger: &Ledger, root: &HostRoot) -> Result<(), InitError> {
    ledger.save(root).map_err(|source| InitError::Ledger {
        path: Ledger::path(root),
        source,
    })
}

/// Records every file, directory and tree init and its pods will create, before creating them,
/// and the configured directories that are boot's (reset refuses a ledger path outside them).
pub(crate) fn note_everything(
    ledger: &mut Ledger,
    cfg: &Config,
    root: &HostRoot,
    layout: &OutputLayout,
    files: &[RenderedFile],
    config_file: &RenderedFile,
) {
    for dir in [
        &layout.cert_dir,
        &layout.kubernetes_dir,
        &layout.manifest_dir,
    ] {
        ledger.note_prefix(dir);
    }
    ledger.note_files(root, files);
    ledger.note_files(root, std::slice::from_ref(config_file));
    let ledger_file = RenderedFile::new(Ledger::path(root), 0o600, Vec::new());
    ledger.note_files(root, std::slice::from_ref(&ledger_file));
    if let Some(AgentLaunch::Systemd { unit_file, .. }) = ledger.agent.clone() {
        ledger.note_files(root, &[RenderedFile::new(unit_file, 0o644, Vec::new())]);
    }
    if let Some(local) = cfg.local_etcd() {
        let data_dir = root.path(&local.data_dir);
        ledger.note_prefix(&data_dir);
        // etcd's data is boot's only when boot creates the directory or finds it empty (an
        // ignored `DirAvailable` check must not hand someone's data over to reset).
        if missing_or_empty(&data_dir) {
            ledger.note_tree(root, &data_dir);
        }
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
    // The API server's audit log directory fills with log files: a tree boot owns when it
    // creates it.
    let audit_log = root.path(crate::render::AUDIT_LOG_DIR);
    if cfg.boot.audit.enabled && !audit_log.exists() {
        ledger.note_tree(root, &audit_log);
    }
    for file in files
        .iter()
        .filter(|f| f.path.extension().is_some_and(|e| e == "yaml"))
    {
        // Only missing ones beneath the root: under `--root`, the host's own directories are
        // not boot's, and an existing directory is not boot's either.
        for dir in host_path_volumes(&file.bytes) {
            if dir.starts_with(root.prefix()) && !dir.exists() {
                ledger.note_dir(root, &dir);
                ledger.note_prefix(&dir);
            }
        }
    }
    // What reset would refuse to remove (a missing top-level directory a hostPath names) is not
    // recorded: reset leaves it, as kubeadm does.
    ledger
        .created_dirs
        .retain(|dir| !crate::reset::never_removed(root, dir));
    ledger
        .prefixes
        .retain(|dir| !crate::reset::never_removed(root, dir));
    ledger.ports.extend(
        preflight::component_ports(cfg)
            .into_iter()
            .map(|(_, port)| port),
    );
}

fn missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// The kubelet's configuration file, and `/var/lib/kubelet` (its serving certificate) when boot
/// creates it; an existing one (a kubelet's) is left alone, as for the pod logs.
pub(crate) fn note_kubelet_files(ledger: &mut Ledger, root: &HostRoot, file: &RenderedFile) {
    let kubelet_dir = root.path("/var/lib/kubelet");
    if !kubelet_dir.exists() {
        ledger.note_tree(root, &kubelet_dir);
    }
    ledger.note_files(root, std::slice::from_ref(file));
    ledger.note_tree(
        root,
        &root.path(crate::node::kubelet_config::KUBELET_PKI_DIR),
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
