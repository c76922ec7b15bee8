//! kubeadm's `bootstrap-token` phase (and its `upload-config/kubelet` step, which `kubeadm join`
//! needs too), run by `boot init` once the API server answers: the tokens' Secrets, the RBAC that
//! lets their holders join nodes, `kube-system/kubelet-config`, and `kube-public/cluster-info`
//! with each signing token's JWS, readable by `system:anonymous`.
//!
//! Host paths: reads `<kubernetes dir>/admin.conf` (identity, and the server URL and CA data
//! that `cluster-info` publishes, as kubeadm takes them from it). Writes nothing on the host.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::jiff::Timestamp;
use kube::config::Kubeconfig;

use super::bootstrap_objects as objects;
use super::error::PostBootError;
use super::tokens::{store_token, update_cluster_info};
use super::ADMIN_CONF;
use crate::config::Config;
use crate::join::cluster_info;
use crate::join::TokenSpec;
use crate::kubeapi::{cluster_scoped, kube_public, kube_system, put, ApiError, Caller};

/// What the phase creates tokens from.
#[derive(Debug, Clone)]
pub struct BootstrapTokens<'a> {
    pub tokens: &'a [TokenSpec],
    pub now: Timestamp,
}

/// Runs the phase with admin.conf and returns kubeadm's `[bootstrap-token] …` lines.
/// Idempotent: a second run replaces what the first created.
pub async fn bootstrap_token(
    kubernetes_dir: &Path,
    cfg: &Config,
    request: BootstrapTokens<'_>,
    timeout: Duration,
) -> Result<Vec<String>, PostBootError> {
    let admin_path = kubernetes_dir.join(ADMIN_CONF);
    let kubeconfig = published_kubeconfig(&admin_path)?;
    let admin = Caller::from_file(&admin_path, timeout).await?;
    let mut lines = Vec::new();
    for spec in request.tokens {
        lines.push(format!("[bootstrap-token] Using token: {}", spec.token));
    }
    lines.push(
        "[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles".into(),
    );
    for spec in request.tokens {
        store_token(&admin, spec, false).await?;
    }
    let (get_nodes, get_nodes_binding) = objects::get_nodes();
    put(&admin, cluster_scoped, &get_nodes).await?;
    put(&admin, cluster_scoped, &get_nodes_binding).await?;
    lines.push(
        "[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes"
            .into(),
    );
    let [csr, approve, rotate] = objects::node_bootstrap_bindings();
    put(&admin, cluster_scoped, &csr).await?;
    lines.push("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for nodes to get long term certificate credentials".into());
    put(&admin, cluster_scoped, &approve).await?;
    lines.push("[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve CSRs from a Node Bootstrap Token".into());
    put(&admin, cluster_scoped, &rotate).await?;
    lines.push("[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client certificates in the cluster".into());

    let (kubelet_config, role, binding) = objects::kubelet_config(cfg);
    put(&admin, kube_system, &kubelet_config).await?;
    put(&admin, kube_system, &role).await?;
    put(&admin, kube_system, &binding).await?;
    lines.push("[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster".into());

    lines.push(
        "[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace"
            .into(),
    );
    let signing: Vec<_> = request
        .tokens
        .iter()
        .filter(|spec| spec.signs() && !spec.is_expired(request.now))
        .map(|spec| &spec.token)
        .collect();
    update_cluster_info(&admin, Some(&kubeconfig), &signing, &[]).await?;
    let (role, binding) = objects::cluster_info_rbac();
    put(&admin, kube_public, &role).await?;
    put(&admin, kube_public, &binding).await?;
    Ok(lines)
}

/// The `cluster-info` kubeconfig from admin.conf's current cluster: its server and CA data.
pub fn published_kubeconfig(admin: &Path) -> Result<String, PostBootError> {
    let bad = |detail: String| ApiError::Kubeconfig {
        path: admin.to_path_buf(),
        detail,
        hint: "run `boot init phase kubeconfig` to write it".into(),
    };
    let config = Kubeconfig::read_from(admin).map_err(|e| bad(e.to_string()))?;
    let context_name = config.current_context.clone().unwrap_or_default();
    let cluster_name = config
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .ok_or_else(|| bad(format!("no context {context_name:?}")))?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .ok_or_else(|| bad(format!("no cluster {cluster_name:?}")))?;
    let server = cluster
        .server
        .clone()
        .ok_or_else(|| bad("no server".into()))?;
    let ca = cluster
        .certificate_authority_data
        .as_deref()
        .ok_or_else(|| bad("no certificate-authority-data".into()))?;
    let ca = base64::engine::general_purpose::STANDARD
        .decode(ca.trim())
        .map_err(|e| bad(format!("certificate-authority-data: {e}")))?;
    Ok(cluster_info::kubeconfig(&server, &ca))
}
