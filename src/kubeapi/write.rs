//! Creating and replacing objects as kubeadm's `apiclient` does: AlreadyExists on a create is
//! [`Outcome::Existed`], and [`put`] (`CreateOrUpdate`) replaces what is stored.

use std::fmt::Debug;

use kube::api::{Api, PostParams};
use kube::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::client::{Caller, Failure};
use super::error::ApiError;
use super::{KUBE_PUBLIC, KUBE_SYSTEM};

/// What a create or a create-or-update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Existed,
    Updated,
}

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Existed => "already there",
            Outcome::Updated => "updated",
        }
    }
}

/// The API of a cluster-scoped kind.
pub fn cluster_scoped<K>(client: Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>,
    K::DynamicType: Default,
{
    Api::all(client)
}

/// The API of a kind in `kube-system`.
pub fn kube_system<K>(client: Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client, KUBE_SYSTEM)
}

/// The API of a kind in `kube-public`.
pub fn kube_public<K>(client: Client) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    Api::namespaced(client, KUBE_PUBLIC)
}

/// Creates `object`; AlreadyExists is [`Outcome::Existed`].
pub async fn create<K>(
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

/// kubeadm's `apiclient.CreateOrUpdate`: create, and on AlreadyExists replace the stored object
/// unconditionally (no resourceVersion, so the last writer wins as in kubeadm).
pub async fn put<K>(
    caller: &Caller,
    api: fn(Client) -> Api<K>,
    object: &K,
) -> Result<Outcome, ApiError>
where
    K: kube::Resource + Clone + Serialize + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let kind = K::kind(&K::DynamicType::default()).into_owned();
    let what = match &object.meta().namespace {
        Some(namespace) => format!("{kind} {namespace}/{name}"),
        None => format!("{kind} {name}"),
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
