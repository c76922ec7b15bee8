//! The post-boot phase of `boot init`, run once the control plane is healthy: what kubeadm does
//! through the API server before it is done (reference §1).
//!
//! 1. `EnsureAdminClusterRoleBinding`: ClusterRoleBinding `kubeadm:cluster-admins` → ClusterRole
//!    `cluster-admin` for the group `admin.conf`'s certificate carries. Without it `admin.conf`
//!    has no permissions. Tried with `admin.conf` first; if that is Forbidden, with
//!    `super-admin.conf` (group `system:masters`). AlreadyExists counts as done.
//! 2. upload-config: the ClusterConfiguration into ConfigMap `kube-system/kubeadm-config` (key
//!    `ClusterConfiguration`), created or updated (`CreateOrUpdateConfigMap`), plus the Role and
//!    RoleBinding `kubeadm:nodes-kubeadm-config` that let joining nodes read it.
//!
//! Host paths: reads `<kubernetes dir>/admin.conf` and, only when needed,
//! `<kubernetes dir>/super-admin.conf`; writes nothing on the host. Every API call is bounded by
//! `timeouts.kubernetesAPICall` and transient failures are retried a few times
//! ([`crate::kubeapi`]).

mod bootstrap;
pub mod bootstrap_objects;
mod error;
pub mod objects;
pub mod tokens;
mod upload;

use std::path::Path;
use std::time::Duration;

use kube::api::{Api, PostParams};

pub use bootstrap::{bootstrap_token, published_kubeconfig, BootstrapTokens};
pub use error::PostBootError;
pub use upload::upload_certs;

use crate::config::ClusterConfiguration;
use crate::kubeapi::{
    cluster_scoped, create, kube_system, put, ApiError, Caller, Failure, Outcome,
};
use objects::{
    CLUSTER_ADMINS, CLUSTER_ADMIN_ROLE, KUBEADM_CONFIG, KUBE_SYSTEM, NODES_KUBEADM_CONFIG,
};

/// kubeadm's `AdminKubeConfigFileName`.
pub const ADMIN_CONF: &str = "admin.conf";
/// kubeadm's `SuperAdminKubeConfigFileName`.
pub const SUPER_ADMIN_CONF: &str = "super-admin.conf";

/// Runs both steps and returns kubeadm-style lines saying what was done, e.g.
/// `[post-boot] Created ClusterRoleBinding kubeadm:cluster-admins … with admin.conf` and
/// `[upload-config] Stored the ClusterConfiguration in ConfigMap kube-system/kubeadm-config`.
/// Idempotent: a second run finds the binding and updates the ConfigMap.
pub async fn run(
    kubernetes_dir: &Path,
    cluster: &ClusterConfiguration,
    timeout: Duration,
) -> Result<Vec<String>, PostBootError> {
    // Rendered first so that a configuration that cannot be stored fails before any API call.
    let config_map = objects::kubeadm_config(cluster)?;
    let admin = Caller::from_file(&kubernetes_dir.join(ADMIN_CONF), timeout).await?;
    let mut lines = vec![ensure_cluster_admins(&admin, kubernetes_dir).await?];
    // Like kubeadm, everything after the binding is done as admin.conf, which now works.
    let stored = put(&admin, kube_system, &config_map).await?;
    lines.push(format!(
        "[upload-config] Stored the ClusterConfiguration in ConfigMap {KUBE_SYSTEM}/{KUBEADM_CONFIG} ({})",
        stored.word()
    ));
    put(&admin, kube_system, &objects::nodes_kubeadm_config_role()).await?;
    put(
        &admin,
        kube_system,
        &objects::nodes_kubeadm_config_binding(),
    )
    .await?;
    lines.push(format!(
        "[upload-config] Role and RoleBinding {KUBE_SYSTEM}/{NODES_KUBEADM_CONFIG} let nodes and \
         bootstrap tokens read it"
    ));
    Ok(lines)
}

/// `EnsureAdminClusterRoleBindingImpl`: admin.conf first, super-admin.conf if Forbidden.
async fn ensure_cluster_admins(
    admin: &Caller,
    kubernetes_dir: &Path,
) -> Result<String, PostBootError> {
    let binding = objects::cluster_admins_binding();
    let object = format!("ClusterRoleBinding {CLUSTER_ADMINS}");
    let done = |outcome: Outcome, file: &str, note: &str| match outcome {
        Outcome::Existed => format!("[post-boot] {object} already exists"),
        _ => format!(
            "[post-boot] Created {object} (group {CLUSTER_ADMINS} → ClusterRole \
             {CLUSTER_ADMIN_ROLE}) with {file}{note}"
        ),
    };
    match create(admin, cluster_scoped, &binding).await {
        Ok(outcome) => return Ok(done(outcome, ADMIN_CONF, "")),
        // The API server was reached but admin.conf has no rights yet: expected on a real
        // RBAC-enabled cluster, where only system:masters may create the binding.
        Err(Failure::Kube(kube::Error::Api(status))) if status.code == 403 => {}
        Err(failure) => return Err(admin.error("create", &object, failure).into()),
    }
    let super_admin_path = kubernetes_dir.join(SUPER_ADMIN_CONF);
    if !super_admin_path.exists() {
        return Err(PostBootError::NoSuperAdmin {
            admin: kubernetes_dir.join(ADMIN_CONF),
            super_admin: super_admin_path,
        });
    }
    let super_admin = Caller::from_file(&super_admin_path, admin.timeout).await?;
    let outcome = create(&super_admin, cluster_scoped, &binding)
        .await
        .map_err(|failure| super_admin.error("create", &object, failure))?;
    until_authorized(admin).await?;
    Ok(done(
        outcome,
        SUPER_ADMIN_CONF,
        " (admin.conf was Forbidden)",
    ))
}

/// Waits until admin.conf may write kube-system ConfigMaps, what it does next. The RBAC
/// authorizer learns of a new binding through its informer, a moment after the binding is
/// stored, so the first call right after it may still be Forbidden (seen on a loaded machine).
/// Asked with a SelfSubjectAccessReview, which every authenticated user may create; within the
/// API-call timeout, as kubeadm's calls retry until theirs.
async fn until_authorized(admin: &Caller) -> Result<(), ApiError> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some("create".into()),
                resource: Some("configmaps".into()),
                namespace: Some(KUBE_SYSTEM.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let what = format!("SelfSubjectAccessReview (is {CLUSTER_ADMINS} in effect?)");
    let deadline = tokio::time::Instant::now() + admin.timeout;
    loop {
        let answer = admin
            .call(|client| {
                let review = review.clone();
                async move {
                    Api::<SelfSubjectAccessReview>::all(client)
                        .create(&PostParams::default(), &review)
                        .await
                }
            })
            .await
            .map_err(|failure| admin.error("create", &what, failure))?;
        if answer.status.is_some_and(|s| s.allowed) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Timeout {
                action: "wait for",
                object: format!("{CLUSTER_ADMINS} to take effect for admin.conf"),
                identity: admin.identity.clone(),
                after: admin.timeout,
                last: Some("admin.conf is still not allowed to create ConfigMaps".into()),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
