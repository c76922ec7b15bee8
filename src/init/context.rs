//! What init's phases share: the request (configuration, root, flags), everything init writes
//! rendered in memory before the first phase runs (a template or PKI error writes nothing), the
//! ledger (recorded before each write), and where the lines go.

use std::io::Write;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::config::{AgentMode, Config};
use crate::controlplane::agent_launch::{self, resolve_mode};
use crate::controlplane::wait::WaitFailure;
use crate::controlplane::{effective_config_file, NodeLedger, RecordError};
use crate::host::{stage_all, HostRoot, RenderedFile, Staged};
use crate::phases::{Selection, Workflow};
use crate::preflight::PreflightReport;
use crate::render::{self, Bundle, OutputLayout, Parts, RenderError, Templates};

/// What the caller asks of init.
pub struct InitRequest {
    pub cfg: Config,
    pub root: HostRoot,
    pub templates: Templates,
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
    /// Starts the agent inside this process (`--agent=foreground`): the caller's to do, as it
    /// owns the agent's options and the process's signals. `None`: foreground is refused.
    pub start_foreground: Option<Box<StartForeground>>,
}

/// See [`InitRequest::start_foreground`].
pub type StartForeground = dyn FnMut(&Config, &HostRoot) -> Result<ForegroundAgent, BoxedError>;
/// A caller's own error, handed back unchanged.
pub type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// The agent and its certificate renewal, running inside this process.
pub struct ForegroundAgent {
    pub agent: tokio::task::JoinHandle<Result<(), crate::agent::AgentError>>,
    pub renewal: tokio::task::JoinHandle<()>,
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
    Record(#[from] RecordError),
    #[error("cannot start the agent: {0}")]
    Agent(std::io::Error),
    #[error("cannot start the agent in the foreground: {0}")]
    Foreground(BoxedError),
    #[error("--agent=foreground is not available here")]
    NoForeground,
    #[error("the control plane did not become healthy")]
    Wait(WaitFailure),
    #[error(transparent)]
    PostBoot(#[from] crate::postboot::PostBootError),
    #[error(transparent)]
    Mark(#[from] crate::node::mark::MarkError),
    #[error(transparent)]
    Images(#[from] crate::image::ImageError),
}

/// Everything init writes, rendered before anything is written, one part per phase.
#[derive(Debug, Default)]
pub struct Rendered {
    /// The certs phase's PKI files (and what happened to each certificate).
    pub certs: Bundle,
    /// The kubeconfig phase's files.
    pub kubeconfigs: Bundle,
    /// Each static pod's manifest by component (`etcd`, `kube-apiserver` with its encryption and
    /// audit files, `kube-controller-manager`, `kube-scheduler`): what the etcd and
    /// control-plane phases write.
    pub manifests: Vec<(&'static str, Bundle)>,
    /// kubeadm's kubelet-start file, which the agent reads.
    pub kubelet_file: Option<RenderedFile>,
    /// The effective configuration the agent runs with.
    pub config_file: Option<RenderedFile>,
}

impl Rendered {
    /// The bundle of one component's manifest (empty when its phase does not run).
    pub fn manifest(&self, component: &str) -> Option<&Bundle> {
        self.manifests
            .iter()
            .find(|(name, _)| *name == component)
            .map(|(_, bundle)| bundle)
    }

    /// Every file this run writes, in the order of its phases.
    pub fn files(&self) -> Vec<RenderedFile> {
        let bundles = [&self.certs, &self.kubeconfigs]
            .into_iter()
            .chain(self.manifests.iter().map(|(_, b)| b));
        let mut files: Vec<RenderedFile> = bundles.flat_map(|b| b.files.iter().cloned()).collect();
        files.extend(self.kubelet_file.iter().cloned());
        files.extend(self.config_file.iter().cloned());
        files
    }

    /// Every manifest file this run writes.
    pub fn manifest_files(&self) -> Vec<RenderedFile> {
        self.manifests
            .iter()
            .flat_map(|(_, b)| b.files.iter())
            .filter(|f| f.path.extension().is_some_and(|e| e == "yaml"))
            .cloned()
            .collect()
    }
}

/// The context init's phases run over.
pub struct InitContext {
    pub request: InitRequest,
    pub out: Box<dyn Write>,
    pub layout: OutputLayout,
    pub rendered: Rendered,
    /// How the agent runs (`auto` resolved).
    pub mode: AgentMode,
    /// The `boot agent` command line.
    pub agent_args: Vec<String>,
    /// The agent running inside this process, once kubelet-start started it.
    pub foreground: Option<ForegroundAgent>,
    ledger: Option<NodeLedger>,
    /// Every file of the run, staged beside its target at the first write.
    staged: Option<Staged>,
}

impl Workflow for InitContext {
    type Error = InitError;
    fn out(&mut self) -> &mut dyn Write {
        &mut self.out
    }
}

/// The static pod phases and the component each writes, in kubeadm's order.
pub const MANIFEST_PHASES: [(&str, &str); 4] = [
    ("etcd", "etcd"),
    ("control-plane/apiserver", "kube-apiserver"),
    (
        "control-plane/controller-manager",
        "kube-controller-manager",
    ),
    ("control-plane/scheduler", "kube-scheduler"),
];

impl InitContext {
    /// Renders everything the selected phases write, in memory; nothing on the host changes.
    pub fn new(
        request: InitRequest,
        selection: &Selection,
        out: Box<dyn Write>,
    ) -> Result<InitContext, InitError> {
        let (cfg, root, templates) = (&request.cfg, &request.root, &request.templates);
        let layout = OutputLayout::host(cfg, root);
        let now = SystemTime::now();
        let mut rendered = Rendered::default();
        let pki = Parts {
            pki: selection.selects("certs"),
            kubeconfigs: selection.selects("kubeconfig"),
            components: &[],
        };
        if pki.pki || pki.kubeconfigs {
            let both = render::bundle(cfg, root, templates, &layout, pki, now)?;
            let (certs, kubeconfigs) = both
                .files
                .into_iter()
                .partition(|f| f.path.starts_with(&layout.cert_dir));
            rendered.certs = Bundle {
                files: certs,
                warnings: both.warnings,
                certs: both.certs,
            };
            rendered.kubeconfigs.files = kubeconfigs;
        }
        for (phase, component) in MANIFEST_PHASES {
            if selection.selects(phase) {
                let parts = Parts {
                    pki: false,
                    kubeconfigs: false,
                    components: &[component],
                };
                let bundle = render::bundle(cfg, root, templates, &layout, parts, now)?;
                rendered.manifests.push((component, bundle));
            }
        }
        if selection.selects("kubelet-start") {
            rendered.kubelet_file =
                Some(crate::node::KubeletConfiguration::for_init(cfg, root).rendered(root));
            rendered.config_file = Some(effective_config_file(cfg, root));
        }
        let mode = resolve_mode(request.agent_mode, root);
        let config_path = root.path(crate::host::layout::EFFECTIVE_CONFIG);
        let agent_args = agent_launch::agent_args(root, &config_path);
        let mut ctx = InitContext {
            request,
            out,
            layout,
            rendered,
            mode,
            agent_args,
            foreground: None,
            ledger: None,
            staged: None,
        };
        for warning in ctx.warnings() {
            ctx.say(format!("[init] WARNING: {warning}"));
        }
        Ok(ctx)
    }

    /// What rendering warned about beyond the configuration's own warnings (the caller shows
    /// those), each once.
    fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = Vec::new();
        let bundles = std::iter::once(&self.rendered.certs)
            .chain(self.rendered.manifests.iter().map(|(_, b)| b));
        for warning in bundles.flat_map(|b| b.warnings.iter()) {
            if !self.request.cfg.warnings.contains(warning) && !warnings.contains(warning) {
                warnings.push(warning.clone());
            }
        }
        warnings
    }

    /// Prints one line.
    pub fn say(&mut self, line: impl AsRef<str>) {
        let _ = writeln!(self.out, "{}", line.as_ref());
    }

    /// This node's ledger; boot's directories and the pods' trees are noted with it the first
    /// time, before anything is written.
    pub fn ledger(&mut self) -> Result<&mut NodeLedger, InitError> {
        if self.ledger.is_none() {
            self.ledger = Some(NodeLedger::load(&self.request.root)?);
        }
        let manifests = self.rendered.manifest_files();
        let ledger = self.ledger.as_mut().expect("loaded above");
        if !ledger.node_noted() {
            ledger.note_node(&self.request.cfg, &self.layout, &manifests);
        }
        Ok(ledger)
    }

    /// Puts `files` (rendered by [`InitContext::new`]) in place. The first write of a run records
    /// every file of every selected phase in the ledger and stages them all beside their
    /// targets, so that a file that cannot be written fails before any file is in place, as one
    /// write would; each phase then renames its own into place.
    pub fn write(&mut self, files: &[RenderedFile]) -> Result<(), InitError> {
        if self.staged.is_none() {
            self.stage_everything()?;
        }
        let staged = self.staged.as_mut().expect("staged above");
        let unstaged: Vec<RenderedFile> = files
            .iter()
            .filter(|f| !staged.holds(&f.path))
            .cloned()
            .collect();
        staged
            .commit(|path| files.iter().any(|f| f.path == path))
            .map_err(RecordError::Write)?;
        // Written again by a later phase (nothing does today): recorded and written on its own.
        if !unstaged.is_empty() {
            self.ledger()?.write(&unstaged)?;
        }
        Ok(())
    }

    fn stage_everything(&mut self) -> Result<(), InitError> {
        let files = self.rendered.files();
        let kubelet_file = self.rendered.kubelet_file.clone();
        let launch = agent_launch::launch_record(self.mode, &self.request.root);
        let ledger = self.ledger()?;
        if let Some(kubelet_file) = &kubelet_file {
            ledger.note_kubelet_files(kubelet_file);
            ledger.note_agent(launch);
        }
        ledger.note_files(&files);
        ledger.save()?;
        self.staged = Some(stage_all(&files).map_err(RecordError::Write)?);
        Ok(())
    }

    /// `timeouts.kubernetesAPICall`.
    pub fn api_timeout(&self) -> std::time::Duration {
        self.request.cfg.init.timeouts.kubernetes_api_call.0
    }
}

/// A dry run's lines for files a phase would write.
pub fn would_write(files: &[RenderedFile]) -> Vec<String> {
    files
        .iter()
        .map(|f| format!("Would write {:o} {}", f.mode, f.path.display()))
        .collect()
}
