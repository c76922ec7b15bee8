//! Bootstrap tokens through the API server (`boot token create|list|delete` and init's
//! bootstrap-token phase): their Secrets, and their signatures in `kube-public/cluster-info`,
//! which boot computes itself so that a join never waits for the controller manager's
//! bootstrapsigner (it computes the same value, and removes a deleted token's too).

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{DeleteParams, ListParams, PostParams};

use super::error::PostBootError;
use crate::join::cluster_info::{self, CLUSTER_INFO, KUBECONFIG_KEY, KUBE_PUBLIC};
use crate::join::token::TOKEN_SECRET_PREFIX;
use crate::join::token_secret::{TokenSpecError, TOKEN_SECRET_TYPE};
use crate::join::{BootstrapToken, TokenSpec};
use crate::kubeapi::{
    create, kube_public, kube_system, put, Caller, Failure, Outcome, KUBE_SYSTEM,
};

/// Read-modify-write attempts of `cluster-info` against concurrent writers (the bootstrapsigner).
const CONFLICT_ATTEMPTS: u32 = 5;

/// Stores `spec`'s Secret. `fail_if_exists` is `kubeadm token create`'s rule (a token ID is
/// never reused); otherwise an existing one is replaced, as init's `UpdateOrCreateTokens`.
/// Returns the stored Secret (its UID owns `kubeadm-certs`).
pub async fn store_token(
    caller: &Caller,
    spec: &TokenSpec,
    fail_if_exists: bool,
) -> Result<Secret, PostBootError> {
    let secret = spec.to_secret();
    let name = spec.token.secret_name();
    let what = format!("Secret {KUBE_SYSTEM}/{name}");
    let outcome = match fail_if_exists {
        true => create(caller, kube_system::<Secret>, &secret)
            .await
            .map_err(|failure| caller.error("create", &what, failure))?,
        false => put(caller, kube_system::<Secret>, &secret).await?,
    };
    if outcome == Outcome::Existed {
        return Err(PostBootError::TokenExists {
            id: spec.token.id().to_string(),
        });
    }
    let name = name.as_str();
    caller
        .call(|client| async move { kube_system::<Secret>(client).get(name).await })
        .await
        .map_err(|failure| caller.error("get", &what, failure).into())
}

/// Every bootstrap token Secret in kube-system, parsed; one that does not parse is reported as
/// its error (`kubeadm token list` prints those to stderr and goes on).
pub async fn list_tokens(
    caller: &Caller,
) -> Result<Vec<Result<TokenSpec, TokenSpecError>>, PostBootError> {
    let params = ListParams::default().fields(&format!("type={TOKEN_SECRET_TYPE}"));
    let params = &params;
    let list = caller
        .call(|client| async move { kube_system::<Secret>(client).list(params).await })
        .await
        .map_err(|failure| {
            caller.error("list", "bootstrap token Secrets in kube-system", failure)
        })?;
    Ok(list
        .items
        .iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(TOKEN_SECRET_PREFIX))
        })
        .map(TokenSpec::from_secret)
        .collect())
}

/// Deletes token `id`'s Secret and its signature in `cluster-info`.
pub async fn delete_token(caller: &Caller, id: &str) -> Result<(), PostBootError> {
    let name = format!("{TOKEN_SECRET_PREFIX}{id}");
    let what = format!("Secret {KUBE_SYSTEM}/{name}");
    let name = name.as_str();
    let deleted = caller
        .call(|client| async move {
            kube_system::<Secret>(client)
                .delete(name, &DeleteParams::default())
                .await
        })
        .await;
    match deleted {
        Ok(_) => {}
        Err(Failure::Kube(kube::Error::Api(status))) if status.code == 404 => {
            return Err(PostBootError::TokenNotFound { id: id.to_string() })
        }
        Err(failure) => return Err(caller.error("delete", &what, failure).into()),
    }
    update_cluster_info(caller, None, &[], &[id])
        .await
        .map(|_| ())
}

/// Read-modify-write of `kube-public/cluster-info`: `kubeconfig` replaced when given (the
/// ConfigMap is created when missing and it is given), signatures added for `sign` and removed
/// for `unsign`. Retried on a conflicting concurrent write. Returns the stored kubeconfig.
pub async fn update_cluster_info(
    caller: &Caller,
    kubeconfig: Option<&str>,
    sign: &[&BootstrapToken],
    unsign: &[&str],
) -> Result<String, PostBootError> {
    let what = format!("ConfigMap {KUBE_PUBLIC}/{CLUSTER_INFO}");
    for _ in 0..CONFLICT_ATTEMPTS {
        let current =
            caller
                .call(|client| async move {
                    kube_public::<ConfigMap>(client).get_opt(CLUSTER_INFO).await
                })
                .await
                .map_err(|failure| caller.error("get", &what, failure))?;
        let Some(mut config_map) = current else {
            let Some(kubeconfig) = kubeconfig else {
                return Err(PostBootError::NoClusterInfo);
            };
            let fresh = cluster_info::config_map(kubeconfig, sign);
            match create(caller, kube_public::<ConfigMap>, &fresh).await {
                Ok(Outcome::Existed) => continue, // created meanwhile: read it again
                Ok(_) => return Ok(kubeconfig.to_string()),
                Err(failure) => return Err(caller.error("create", &what, failure).into()),
            }
        };
        let data = config_map.data.get_or_insert_with(Default::default);
        if let Some(kubeconfig) = kubeconfig {
            data.insert(KUBECONFIG_KEY.into(), kubeconfig.into());
        }
        if !data.contains_key(KUBECONFIG_KEY) {
            return Err(PostBootError::NoClusterInfo);
        }
        cluster_info::sign(data, sign);
        for id in unsign {
            cluster_info::unsign(data, id);
        }
        let stored = data[KUBECONFIG_KEY].clone();
        let config_map = &config_map;
        let replaced = caller
            .call(|client| async move {
                kube_public::<ConfigMap>(client)
                    .replace(CLUSTER_INFO, &PostParams::default(), config_map)
                    .await
            })
            .await;
        match replaced {
            Ok(_) => return Ok(stored),
            Err(Failure::Kube(kube::Error::Api(status))) if status.code == 409 => continue,
            Err(failure) => return Err(caller.error("update", &what, failure).into()),
        }
    }
    Err(PostBootError::Conflict { object: what })
}
