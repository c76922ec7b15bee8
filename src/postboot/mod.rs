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
//! `timeouts.kubernetesAPICall` and transient failures are retried a few times (`client`).

mod bootstrap;
pub mod bootstrap_objects;
mod client;
mod error;
pub mod objects;
pub mod tokens;
mod upload;

use std::fmt::Debug;
use std::path::Path;
use std::time::Duration;

use kube::api::{Api, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use bootstrap::{bootstrap_token, published_kubeconfig, BootstrapTokens};
pub use client::{is_transient, Caller, Failure};
pub use error::{describe, PostBootError};
pub use upload::upload_certs;

use crate::config::ClusterConfiguration;
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
    let stored = create_or_update(&admin, &config_map).await?;
    lines.push(format!(
        "[upload-config] Stored the ClusterConfiguration in ConfigMap {KUBE_SYSTEM}/{KUBEADM_CONFIG} ({})",
        stored.word()
    ));
    create_or_update(&admin, &objects::nodes_kubeadm_config_role()).await?;
    create_or_update(&admin, &objects::nodes_kubeadm_config_binding()).await?;
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
        Err(failure) => return Err(admin.error("create", &object, failure)),
    }
    let super_admin_path = kubernetes_dir.join(SUPER_ADMIN_CONF);
    if !super_admin_path.exists() {
        return Err(PostBootError::NoSuperAdmin {
            admin: admin.kubeconfig.clone(),
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
async fn until_authorized(admin: &Caller) -> Result<(), PostBootError> {
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
            return Err(PostBootError::Timeout {
                action: "wait for",
                object: format!("{CLUSTER_ADMINS} to take effect for admin.conf"),
                kubeconfig: admin.kubeconfig.clone(),
                after: admin.timeout,
                last: Some("admin.conf is still not allowed to create ConfigMaps".into()),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Created,
    Existed,
    Updated,
}

impl Outcome {
    pub(crate) fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Existed => "already there",
            Outcome::Updated => "updated",
        }
    }
}

pub(crate) fn cluster_scoped<K>(client: Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>,
    K::DynamicType: Default,
{
    Api::all(client)
}

pub(crate) fn namespaced<K>(client: Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client, KUBE_SYSTEM)
}

/// Creates `object`; AlreadyExists is [`Outcome::Existed`].
pub(crate) async fn create<K>(
    caller: &Caller,
    api: fn(Client) -> Api<K>,
    object: &K,
) -> Result<Outcome, Failure>
where
    K: kube::Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let created = caller
        .call(|client| async move { api(client).create(&PostParams::default(), object).await })
        .await;
    match created {
        Ok(_) => Ok(Outcome::Created),
        Err(Failure::Kube(kube::Error::Api(status)))
            if status.code == 409 && status.reason == "AlreadyExists" =>
        {
            Ok(Outcome::Existed)
        }
        Err(failure) => Err(failure),
    }
}

/// kubeadm's `apiclient.CreateOrUpdate` in `kube-system`.
async fn create_or_update<K>(caller: &Caller, object: &K) -> Result<Outcome, PostBootError>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + Serialize
        + DeserializeOwned
        + Debug,
    K::DynamicType: Default,
{
    put(caller, namespaced::<K>, object).await
}

/// kubeadm's `apiclient.CreateOrUpdate`: create, and on AlreadyExists replace the stored object
/// unconditionally (no resourceVersion, so the last writer wins as in kubeadm).
pub(crate) async fn put<K>(
    caller: &Caller,
    api: fn(Client) -> Api<K>,
    object: &K,
) -> Result<Outcome, PostBootError>
where
    K: kube::Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let what = match &object.meta().namespace {
        Some(namespace) => format!("{} {namespace}/{name}", K::kind(&K::DynamicType::default())),
        None => format!("{} {name}", K::kind(&K::DynamicType::default())),
    };
    match create(caller, api, object).await {
        Ok(Outcome::Existed) => {}
        Ok(outcome) => return Ok(outcome),
        Err(failure) => return Err(caller.error("create", &what, failure)),
    }
    let name = name.as_str();
    caller
        .call(|client| async move {
            api(client)
                .replace(name, &PostParams::default(), object)
                .await
        })
        .await
        .map(|_| Outcome::Updated)
        .map_err(|failure| caller.error("update", &what, failure))
}
