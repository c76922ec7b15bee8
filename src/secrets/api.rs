//! What `boot secrets rotate-key` asks the API server: which encryption configuration it has
//! loaded (the `apiserver_encryption_config_controller_last_config_info` metric carries
//! `sha256:<hex>` of the file's bytes, at start and after every automatic reload), and re-writing
//! every Secret or ConfigMap so that it is stored with the current write key.
//!
//! A re-write is a GET and an unchanged PUT: the API server sees that the stored value was
//! decrypted with a key that is no longer first (the value is "stale") and writes it again,
//! encrypted with the first key — Kubernetes' documented way (`kubectl replace`).

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, ListParams, PostParams};
use kube::Client;

use crate::kubeapi::{describe, Caller};

/// The metric whose `hash` label names the loaded configuration.
const CONFIG_INFO: &str = "apiserver_encryption_config_controller_last_config_info{";
/// Objects listed per page.
const PAGE: u32 = 250;
/// PUTs in flight at once: enough to hide round trips, few enough not to crowd the API server.
const IN_FLIGHT: usize = 8;
/// One API call's bound.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Client(#[from] crate::kubeapi::ApiError),
    #[error("the API server did not answer {action}: {reason}")]
    Call { action: String, reason: String },
}

/// A client with the identity of `kubeconfig` (admin.conf).
pub async fn client(kubeconfig: &Path) -> Result<Client, ApiError> {
    Ok(Caller::from_file(kubeconfig, CALL_TIMEOUT).await?.client)
}

/// The hashes (`sha256:<hex>`) of the encryption configurations the API server reports loaded.
pub async fn loaded_hashes(client: &Client) -> Result<Vec<String>, ApiError> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .map_err(|e| call("GET /metrics", e.to_string()))?;
    let text = tokio::time::timeout(CALL_TIMEOUT, client.request_text(request))
        .await
        .map_err(|_| call("GET /metrics", "timed out".into()))?
        .map_err(|e| call("GET /metrics", describe(&e)))?;
    Ok(config_hashes(&text))
}

/// The addresses of the cluster's running API servers: each keeps its advertise address in the
/// `kubernetes` Service's endpoints while it runs (the lease reconciler drops one that stopped once
/// its lease expires).
pub async fn api_server_addresses(client: &Client) -> Result<Vec<String>, ApiError> {
    let action = "the list of the kubernetes Service's EndpointSlices";
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let params = ListParams::default().labels("kubernetes.io/service-name=kubernetes");
    let list = tokio::time::timeout(CALL_TIMEOUT, slices.list(&params))
        .await
        .map_err(|_| call(action, "timed out".into()))?
        .map_err(|e| call(action, describe(&e)))?;
    let mut addresses: Vec<String> = list
        .items
        .iter()
        .flat_map(|slice| slice.endpoints.iter().flatten())
        .flat_map(|endpoint| endpoint.addresses.iter().cloned())
        .collect();
    addresses.sort();
    addresses.dedup();
    Ok(addresses)
}

/// The `hash` labels of [`CONFIG_INFO`] samples in a Prometheus text exposition.
pub fn config_hashes(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .filter_map(|line| line.strip_prefix(CONFIG_INFO))
        .filter_map(|labels| {
            // Values here are hashes and ids: no commas or braces inside them.
            let labels = &labels[..labels.find('}')?];
            labels.split(',').find_map(|label| {
                let value = label.strip_prefix("hash=\"")?.strip_suffix('"')?;
                Some(value.to_string())
            })
        })
        .collect()
}

/// How a re-write went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rewritten {
    pub listed: u64,
    pub written: u64,
    /// Changed or deleted by someone else meanwhile: that write already used the current key.
    pub skipped: u64,
}

/// GETs and PUTs back every object of `resource` (`secrets` or `configmaps`).
pub async fn rewrite(
    client: &Client,
    resource: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Rewritten, ApiError> {
    match resource {
        "secrets" => rewrite_all::<Secret>(client, resource, progress).await,
        "configmaps" => rewrite_all::<ConfigMap>(client, resource, progress).await,
        other => Err(call(
            &format!("a re-write of {other}"),
            "boot re-writes only secrets and configmaps".into(),
        )),
    }
}

async fn rewrite_all<K>(
    client: &Client,
    resource: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<Rewritten, ApiError>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let all: Api<K> = Api::all(client.clone());
    let mut done = Rewritten::default();
    let mut token: Option<String> = None;
    loop {
        let mut params = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            params = params.continue_token(t);
        }
        let page = all
            .list(&params)
            .await
            .map_err(|e| call(&format!("LIST {resource}"), describe(&e)))?;
        done.listed += page.items.len() as u64;
        let puts = futures::stream::iter(page.items.into_iter().map(|object| {
            let client = client.clone();
            async move { put_back(client, object).await }
        }))
        .buffer_unordered(IN_FLIGHT);
        futures::pin_mut!(puts);
        while let Some(result) = puts.next().await {
            match result {
                Ok(true) => done.written += 1,
                Ok(false) => done.skipped += 1,
                Err(e) => return Err(call(&format!("PUT {resource}"), e)),
            }
            if (done.written + done.skipped) % 100 == 0 {
                progress(&format!(
                    "{resource}: {} re-written",
                    done.written + done.skipped
                ));
            }
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(done);
        }
    }
}

/// PUTs `object` back unchanged; `Ok(false)` when it changed or went away meanwhile.
async fn put_back<K>(client: Client, object: K) -> Result<bool, String>
where
    K: kube::Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let meta = object.meta();
    let (namespace, name) = (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    );
    let api: Api<K> = Api::namespaced(client, &namespace);
    match api.replace(&name, &PostParams::default(), &object).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => Ok(false),
        Err(e) => Err(format!("{namespace}/{name}: {}", describe(&e))),
    }
}

fn call(action: &str, reason: String) -> ApiError {
    ApiError::Call {
        action: action.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loaded_configuration_hash_is_read_from_the_metric() {
        let metrics = "# HELP apiserver_encryption_config_controller_last_config_info [ALPHA] …\n\
            apiserver_encryption_config_controller_last_config_info{apiserver_id_hash=\"sha256:aaaa\",hash=\"sha256:851e\"} 1\n\
            apiserver_encryption_config_controller_automatic_reloads_total{apiserver_id_hash=\"sha256:aaaa\",status=\"success\"} 1\n\
            apiserver_encryption_config_controller_last_config_info{hash=\"sha256:beef\",apiserver_id_hash=\"sha256:cccc\"} 1\n";
        assert_eq!(config_hashes(metrics), ["sha256:851e", "sha256:beef"]);
        assert!(config_hashes("apiserver_storage_objects{resource=\"secrets\"} 3\n").is_empty());
    }
}
