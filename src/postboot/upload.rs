//! kubeadm's `upload-certs` phase (`init --upload-certs`, `boot init phase upload-certs
//! --upload-certs`): the shared CA files and service-account keys, encrypted with the
//! certificate key, in Secret `kube-system/kubeadm-certs`, owned by a bootstrap token that
//! expires in two hours so that the controller manager's tokencleaner deletes both; and the
//! Role that lets bootstrap tokens read it.
//!
//! Host paths: reads the shared files under the PKI directory (and the external etcd client
//! files the configuration names) and `<kubernetes dir>/admin.conf`. Writes nothing on the host.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use super::bootstrap_objects as objects;
use super::error::PostBootError;
use super::tokens::store_token;
use super::ADMIN_CONF;
use crate::config::Config;
use crate::host::HostRoot;
use crate::join::token_secret::{expiry, CERT_TOKEN_TTL};
use crate::join::upload_certs::{seal, ENCRYPTION_CONFIG_KEY, EXTERNAL_ETCD, KUBEADM_CERTS};
use crate::join::{BootstrapToken, CertificateKey, TokenSpec};
use crate::kubeapi::{kube_system, put, Caller};

/// kubeadm's description of the token that carries the Secret's TTL.
const CERT_TOKEN_DESCRIPTION: &str = "Proxy for managing TTL for the kubeadm-certs secret";

/// Uploads the shared certificates under `cert_dir` encrypted with `key`; returns kubeadm's
/// `[upload-certs] …` lines (the key is printed by the caller).
pub async fn upload_certs(
    kubernetes_dir: &Path,
    cert_dir: &Path,
    root: &HostRoot,
    cfg: &Config,
    key: &CertificateKey,
    timeout: Duration,
) -> Result<Vec<String>, PostBootError> {
    let external = cfg.cluster.etcd.external.as_ref();
    let mut extra_files: Vec<(&'static str, PathBuf)> = match external {
        None => vec![],
        Some(etcd) => EXTERNAL_ETCD
            .iter()
            .zip([&etcd.ca_file, &etcd.cert_file, &etcd.key_file])
            .filter(|(_, file)| !file.is_empty())
            .map(|(name, file)| (*name, root.path(file)))
            .collect(),
    };
    if cfg.boot.encryption_at_rest.enabled {
        extra_files.push((
            ENCRYPTION_CONFIG_KEY,
            kubernetes_dir.join(crate::render::ENCRYPTION_CONFIG),
        ));
    }
    // Everything is read and encrypted before the first API call.
    let data = seal(cert_dir, external.is_some(), &extra_files, key)?;
    let admin = Caller::from_file(&kubernetes_dir.join(ADMIN_CONF), timeout).await?;
    let owner = TokenSpec {
        token: BootstrapToken::generate(),
        description: Some(CERT_TOKEN_DESCRIPTION.into()),
        expires: expiry(CERT_TOKEN_TTL, Timestamp::now()),
        usages: vec![],
        groups: vec![],
    };
    let owner_secret = store_token(&admin, &owner, true).await?;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(KUBEADM_CERTS.into()),
            namespace: Some("kube-system".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Secret".into(),
                name: owner.token.secret_name(),
                uid: owner_secret.metadata.uid.unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..Secret::default()
    };
    put(&admin, kube_system, &secret).await?;
    let (role, binding) = objects::kubeadm_certs_rbac();
    put(&admin, kube_system, &role).await?;
    put(&admin, kube_system, &binding).await?;
    Ok(vec![
        "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace".into(),
    ])
}
