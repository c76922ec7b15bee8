//! Applying the rendered addons through the API server (server-side apply, field manager `boot`,
//! forced: boot owns the fields it writes, so a re-run or an upgrade puts them back), with two
//! exceptions kubeadm also makes: a CoreDNS Deployment that exists keeps its replica count, and an
//! existing `coredns` ConfigMap keeps its Corefile (kubeadm's `CreateOrRetainConfigMap`: the user
//! edits it to add stub domains).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};

use super::render::Object;
use crate::kubeapi::{ApiError, Caller, Failure};

/// The field manager of every object boot applies.
pub const FIELD_MANAGER: &str = "boot";

/// Server-side applies `object`.
pub async fn apply(caller: &Caller, object: &Object) -> Result<(), ApiError> {
    let (group, version) = match object.api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", object.api_version.as_str()),
    };
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &object.kind));
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let (name, namespace, body) = (&object.name, object.namespace.as_deref(), &object.body);
    caller
        .call(|client| {
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(client, ns, &resource),
                None => Api::all_with(client, &resource),
            };
            let params = params.clone();
            async move { api.patch(name, &params, &Patch::Apply(body)).await }
        })
        .await
        .map(|_| ())
        .map_err(|failure| caller.error("apply", &object.describe(), failure))
}

/// The replicas of the CoreDNS Deployment if it exists (kubeadm's `deployedDNSReplicas`).
pub async fn deployed_replicas(caller: &Caller) -> Result<Option<i32>, ApiError> {
    let found = caller
        .call(|client| async move {
            Api::<Deployment>::namespaced(client, crate::kubeapi::KUBE_SYSTEM)
                .get_opt(super::COREDNS)
                .await
        })
        .await
        .map_err(|f| caller.error("get", "Deployment kube-system/coredns", f))?;
    Ok(found.and_then(|d| d.spec.and_then(|s| s.replicas)))
}

/// Whether the `coredns` ConfigMap exists.
pub async fn corefile_exists(caller: &Caller) -> Result<bool, ApiError> {
    caller
        .call(|client| async move {
            Api::<ConfigMap>::namespaced(client, crate::kubeapi::KUBE_SYSTEM)
                .get_opt(super::COREDNS)
                .await
        })
        .await
        .map(|found| found.is_some())
        .map_err(|f: Failure| caller.error("get", "ConfigMap kube-system/coredns", f))
}
