//! kubeadm's `addon` phase (design §9): CoreDNS and kube-proxy, with kubeadm's objects, names,
//! labels, RBAC and images, rendered from `templates/addons/` ([`render`], pure) and
//! server-side applied through the API server as `admin.conf` ([`apply`]), so that a re-run or an
//! upgrade applies them again. ClusterConfiguration `dns.disabled` / `proxy.disabled` turn either
//! off ([`Enabled`]). [`images`] names their images for `boot images list|pull`.
//!
//! Host paths: reads `<kubernetes dir>/admin.conf`; writes nothing on the host.

pub mod apply;
pub mod images;
pub mod render;

use std::path::Path;
use std::time::Duration;

use crate::config::{ClusterConfiguration, Config};
use crate::kubeapi::{ApiError, Caller};
use crate::postboot::ADMIN_CONF;
use crate::render::{RenderError, Templates};

pub use render::{dns_ip, Object, Rendered};

/// The templates, as `crate::render::Templates` names them (`--templates DIR` overrides them).
pub const COREDNS_TEMPLATE: &str = "coredns.yaml.tera";
pub const KUBE_PROXY_TEMPLATE: &str = "kube-proxy.yaml.tera";
/// kubeadm's `CoreDNSDeploymentName` and `CoreDNSConfigMap`.
const COREDNS: &str = "coredns";

/// Which addons the cluster wants (`dns.disabled`, `proxy.disabled`; both on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enabled {
    pub coredns: bool,
    pub kube_proxy: bool,
}

impl Enabled {
    pub fn of(cluster: &ClusterConfiguration) -> Enabled {
        Enabled {
            coredns: !cluster.dns.as_ref().is_some_and(|d| d.disabled),
            kube_proxy: !cluster.proxy.as_ref().is_some_and(|p| p.disabled),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AddonError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("template {template} does not render API objects: {detail}")]
    Invalid { template: String, detail: String },
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl AddonError {
    pub fn hint(&self) -> Option<String> {
        match self {
            AddonError::Render(_) | AddonError::Invalid { .. } => Some(
                "check the addon template given with --templates (or remove it to use the built-in one)".into(),
            ),
            AddonError::Api(e) => Some(e.hint()),
        }
    }
}

/// The client the addon phases apply with: `admin.conf`, each call bounded by `timeout`.
pub async fn caller(kubernetes_dir: &Path, timeout: Duration) -> Result<Caller, AddonError> {
    Ok(Caller::from_file(&kubernetes_dir.join(ADMIN_CONF), timeout).await?)
}

/// `addon/coredns`: renders, then applies every object; returns kubeadm's lines.
pub async fn coredns(
    caller: &Caller,
    cfg: &Config,
    templates: &Templates,
) -> Result<Vec<String>, AddonError> {
    if !Enabled::of(&cfg.cluster).coredns {
        return Ok(vec![
            "[addons] Skipping CoreDNS: ClusterConfiguration.dns.disabled is true".into(),
        ]);
    }
    let replicas = apply::deployed_replicas(caller)
        .await?
        .unwrap_or(render::COREDNS_REPLICAS);
    let rendered = render::coredns(cfg, templates, replicas)?;
    let keep_corefile = apply::corefile_exists(caller).await?;
    let mut lines = Vec::new();
    for object in &rendered.objects {
        if keep_corefile && object.kind == "ConfigMap" && object.name == COREDNS {
            lines.push(
                "[addons] Kept the existing Corefile in ConfigMap kube-system/coredns".into(),
            );
            continue;
        }
        apply::apply(caller, object).await?;
    }
    lines.push(format!(
        "[addons] Applied essential addon: CoreDNS ({}, Service kube-system/kube-dns at {})",
        images::coredns_image(cfg),
        dns_ip(cfg)
    ));
    Ok(lines)
}

/// `addon/kube-proxy`: renders, then applies every object; returns kubeadm's line.
pub async fn kube_proxy(
    caller: &Caller,
    cfg: &Config,
    templates: &Templates,
) -> Result<Vec<String>, AddonError> {
    if !Enabled::of(&cfg.cluster).kube_proxy {
        return Ok(vec![
            "[addons] Skipping kube-proxy: ClusterConfiguration.proxy.disabled is true".into(),
        ]);
    }
    let rendered = render::kube_proxy(cfg, templates)?;
    for object in &rendered.objects {
        apply::apply(caller, object).await?;
    }
    Ok(vec![format!(
        "[addons] Applied essential addon: kube-proxy ({})",
        images::kube_proxy_image(cfg)
    )])
}
