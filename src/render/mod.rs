//! Rendering: configuration (+ PKI) → every file `boot` writes, in memory. Nothing here touches the
//! host except reading templates, existing certificates and kubeconfigs; the caller writes the
//! result with [`crate::host::write_all`] only when all of it rendered (design §3).

mod flags;
mod kubeconfig;
mod pods;
mod probes;
mod report;
mod security;
mod templates;
mod volumes;

pub use flags::Flag;
pub use kubeconfig::{KubeconfigSpec, KUBECONFIGS};
pub use pods::PodSpec;
pub use report::lines as progress_lines;
pub use security::{AUDIT_LOG_DIR, AUDIT_POLICY, ENCRYPTION_CONFIG};
pub use templates::{names as template_names, yaml_scalar, Templates};
pub use volumes::OPTIONAL_CA_DIRS;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Pod;

use crate::config::Config;
use crate::host::{HostRoot, RenderedFile};
use crate::pki::{self, ExistingPki, Pki, PkiError, PkiRequest};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    #[error("template {name} does not render a valid Pod: {message}")]
    InvalidPod { name: String, message: String },
    #[error("cannot read the template directory {dir}")]
    TemplateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read template {path}")]
    TemplateRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} matches no template (known: {})", known.join(", "))]
    UnknownTemplate {
        path: PathBuf,
        known: Vec<&'static str>,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a kubeconfig: {why}")]
    KubeconfigInvalid { path: PathBuf, why: String },
    #[error("{path} exists with a different CA than the cluster's")]
    KubeconfigCaMismatch { path: PathBuf },
    #[error("{path} does not exist and cannot be written: the cluster CA key is not present (external CA mode)")]
    KubeconfigMissingExternalCa { path: PathBuf },
    #[error("cannot issue the client certificate for {path}")]
    KubeconfigCredentials {
        path: PathBuf,
        #[source]
        source: Box<PkiError>,
    },
    #[error(
        "{path} is not a usable encryption configuration ({why}); it may hold the only key to \
         the Secrets in etcd, so boot does not replace it: restore it, or remove it to have a new \
         key generated (Secrets encrypted with the old key are then unreadable)"
    )]
    EncryptionConfigInvalid { path: PathBuf, why: String },
    #[error("the cluster CA {path} does not exist")]
    MissingCa { path: PathBuf },
    #[error(transparent)]
    Pki(Box<PkiError>),
}

impl RenderError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            RenderError::KubeconfigCaMismatch { path } | RenderError::KubeconfigInvalid { path, .. } => {
                Some(format!("remove {} to have it written anew, or run `boot reset`", path.display()))
            }
            RenderError::UnknownTemplate { .. } | RenderError::Template { .. } | RenderError::InvalidPod { .. } => {
                Some("compare with the built-in templates: `boot manifests --stdout` uses them when --templates is not given".into())
            }
            RenderError::MissingCa { .. } => Some("run `boot init phase certs` first".into()),
            RenderError::KubeconfigMissingExternalCa { path } => Some(format!(
                "provide {} with a client certificate signed by the external CA",
                path.display()
            )),
            _ => None,
        }
    }
}

impl From<PkiError> for RenderError {
    fn from(err: PkiError) -> Self {
        RenderError::Pki(Box::new(err))
    }
}

/// The components in the order kubeadm writes them.
pub const COMPONENTS: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

/// Where files are written (and existing certificates and kubeconfigs are read). The paths
/// written *inside* the files always follow the configuration and `--root`; `boot manifests --out
/// DIR` only moves the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLayout {
    pub cert_dir: PathBuf,
    pub kubernetes_dir: PathBuf,
    pub manifest_dir: PathBuf,
}

impl OutputLayout {
    /// The configured host locations under `root`.
    pub fn host(cfg: &Config, root: &HostRoot) -> Self {
        OutputLayout {
            cert_dir: root.path(cfg.cert_dir()),
            kubernetes_dir: root.path("/etc/kubernetes"),
            manifest_dir: root.path(&cfg.static_pod_path),
        }
    }

    /// `DIR` standing for `/etc/kubernetes`: `DIR/pki`, `DIR/*.conf`, `DIR/manifests`.
    pub fn under(dir: &Path) -> Self {
        OutputLayout {
            cert_dir: dir.join("pki"),
            kubernetes_dir: dir.to_path_buf(),
            manifest_dir: dir.join("manifests"),
        }
    }
}

/// The static pod manifests of `components` (external etcd has none), each checked to be a valid
/// Pod. `external_ca` blanks the controller-manager's signing flags as kubeadm does.
pub fn manifests(
    cfg: &Config,
    root: &HostRoot,
    templates: &Templates,
    manifest_dir: &Path,
    components: &[&str],
    external_ca: bool,
) -> Result<Vec<RenderedFile>, RenderError> {
    let specs = [
        pods::etcd(cfg, root),
        Some(pods::kube_apiserver(cfg, root)),
        Some(pods::kube_controller_manager(cfg, root, external_ca)),
        Some(pods::kube_scheduler(cfg, root)),
    ];
    specs
        .into_iter()
        .flatten()
        .filter(|spec| components.contains(&spec.name))
        .map(|spec| {
            let template = format!("{}.yaml.tera", spec.name);
            let context =
                tera::Context::from_serialize(&spec).map_err(|e| RenderError::Template {
                    name: template.clone(),
                    message: e.to_string(),
                })?;
            let text = templates
                .render(&template, &context)?
                .trim_start()
                .to_string();
            check_pod(&template, &text)?;
            // Manifests are 0600 in a 0700 directory (kubeadm's WriteStaticPodToDisk).
            Ok(RenderedFile::new(
                manifest_dir.join(format!("{}.yaml", spec.name)),
                0o600,
                text,
            ))
        })
        .collect()
}

/// A manifest must be one Pod a kubelet would accept; a user template that breaks that fails here.
fn check_pod(template: &str, text: &str) -> Result<Pod, RenderError> {
    let invalid = |message: String| RenderError::InvalidPod {
        name: template.to_string(),
        message,
    };
    let pod: Pod = serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
    let spec = pod.spec.as_ref().ok_or_else(|| invalid("no spec".into()))?;
    if pod.metadata.name.as_deref().unwrap_or_default().is_empty() || spec.containers.is_empty() {
        return Err(invalid(
            "a Pod needs metadata.name and at least one container".into(),
        ));
    }
    Ok(pod)
}

/// The PKI request the configuration describes (reference §2).
pub fn pki_request(cfg: &Config, cert_dir: &Path, now: SystemTime) -> PkiRequest {
    let local = cfg.local_etcd();
    PkiRequest {
        cert_dir: cert_dir.to_path_buf(),
        node_name: cfg.node_name.clone(),
        advertise_address: cfg.advertise_address,
        first_service_ip: cfg.first_service_ip(),
        dns_domain: cfg.cluster.networking.dns_domain.clone(),
        control_plane_endpoint_host: cfg
            .cluster
            .control_plane_endpoint
            .as_ref()
            .map(|e| e.host.clone()),
        apiserver_cert_sans: cfg.cluster.api_server.cert_sans.clone(),
        etcd_server_cert_sans: local
            .map(|l| l.server_cert_sans.clone())
            .unwrap_or_default(),
        etcd_peer_cert_sans: local.map(|l| l.peer_cert_sans.clone()).unwrap_or_default(),
        local_etcd: local.is_some(),
        algorithm: cfg.cluster.encryption_algorithm,
        cert_validity: cfg.cluster.certificate_validity_period.0,
        ca_validity: cfg.cluster.ca_certificate_validity_period.0,
        now,
    }
}

/// Everything one run writes, rendered but not yet written.
#[derive(Debug, Default)]
pub struct Bundle {
    /// PKI files first, then kubeconfigs, then manifests: the order they are written in.
    pub files: Vec<RenderedFile>,
    pub warnings: Vec<String>,
    /// What happened to each certificate (generated, reused, external CA), for kubeadm's lines.
    pub certs: Vec<crate::pki::CertOutcome>,
}

/// What to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    pub pki: bool,
    pub kubeconfigs: bool,
    /// Which static pod manifests, by component name.
    pub components: &'a [&'a str],
}

/// Renders the requested parts in memory. Kubeconfigs embed client certificates, so they need the
/// cluster CA: issued here with `pki`, or already present in the layout's certificate directory.
pub fn bundle(
    cfg: &Config,
    root: &HostRoot,
    templates: &Templates,
    layout: &OutputLayout,
    parts: Parts,
    now: SystemTime,
) -> Result<Bundle, RenderError> {
    if parts.kubeconfigs && !parts.pki && !layout.cert_dir.join("ca.crt").exists() {
        return Err(RenderError::MissingCa {
            path: layout.cert_dir.join("ca.crt"),
        });
    }
    let existing = match parts.pki || parts.kubeconfigs {
        true => ExistingPki::load(&layout.cert_dir)?,
        false => ExistingPki::empty(),
    };
    bundle_with(cfg, root, templates, layout, parts, now, &existing)
}

/// [`bundle`] with the PKI that is "already there" given in memory (`boot join`: the shared CAs
/// it downloaded, before anything is written).
pub fn bundle_with(
    cfg: &Config,
    root: &HostRoot,
    templates: &Templates,
    layout: &OutputLayout,
    parts: Parts,
    now: SystemTime,
    existing: &ExistingPki,
) -> Result<Bundle, RenderError> {
    let mut bundle = Bundle {
        files: Vec::new(),
        warnings: cfg.warnings.clone(),
        certs: Vec::new(),
    };
    let mut external_ca = is_external_ca(&layout.cert_dir);
    if parts.pki || parts.kubeconfigs {
        let issued: Pki = pki::issue(&pki_request(cfg, &layout.cert_dir, now), existing)?;
        external_ca = issued.external_ca;
        bundle.warnings.extend(issued.warnings.iter().cloned());
        if parts.pki {
            bundle.certs = issued.outcomes.clone();
        }
        if parts.pki {
            bundle.files.extend(issued.files.iter().cloned());
        }
        if parts.kubeconfigs && !issued.external_ca {
            let (files, warnings) =
                kubeconfig::render(cfg, templates, &layout.kubernetes_dir, &issued)?;
            bundle.files.extend(files);
            bundle.warnings.extend(warnings);
        } else if parts.kubeconfigs {
            let warnings = kubeconfig::check_external(cfg, &layout.kubernetes_dir, &issued)?;
            bundle.warnings.extend(warnings);
        }
    }
    if parts.components.contains(&"kube-apiserver") {
        bundle
            .files
            .extend(security::files(cfg, templates, &layout.kubernetes_dir)?);
    }
    bundle.files.extend(manifests(
        cfg,
        root,
        templates,
        &layout.manifest_dir,
        parts.components,
        external_ca,
    )?);
    Ok(bundle)
}

/// kubeadm's `UsingExternalCA`: `ca.crt` present without `ca.key`.
fn is_external_ca(cert_dir: &Path) -> bool {
    cert_dir.join("ca.crt").exists() && !cert_dir.join("ca.key").exists()
}
