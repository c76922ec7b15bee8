//! `kube-public/cluster-info`, the one object a joining node reads before it trusts anything:
//! key `kubeconfig` holds a kubeconfig with a single cluster (the API server URL and the CA, no
//! user), written exactly as client-go's `clientcmd.Write` writes kubeadm's (so its bytes, which
//! the JWS signs, are stable); key `jws-kubeconfig-<token id>` holds each signing token's
//! detached signature of those bytes. Pure: building the ConfigMap and reading it back.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::jws::{self, JWS_KEY_PREFIX};
use super::token::BootstrapToken;

/// `bootstrapapi.ConfigMapClusterInfo`.
pub const CLUSTER_INFO: &str = "cluster-info";
/// `metav1.NamespacePublic`.
pub const KUBE_PUBLIC: &str = "kube-public";
/// `bootstrapapi.KubeConfigKey`.
pub const KUBECONFIG_KEY: &str = "kubeconfig";
/// The largest CA bundle accepted from the cluster (a handful of certificates).
const MAX_CA_BYTES: usize = 256 * 1024;

/// What discovery learns: where the API server is and which CA signs its certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    /// The `server:` of the cluster-info kubeconfig (`https://host:port`).
    pub server: String,
    /// The CA bundle (PEM) from `certificate-authority-data`.
    pub ca_pem: String,
}

impl ClusterInfo {
    /// The CA certificates as DER, for a TLS client's roots.
    pub fn ca_ders(&self) -> Vec<Vec<u8>> {
        pem::parse_many(self.ca_pem.as_bytes())
            .unwrap_or_default()
            .into_iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| block.into_contents())
            .collect()
    }
}

/// Why a `cluster-info` kubeconfig is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterInfoError {
    #[error("the kubeconfig in ConfigMap kube-public/cluster-info does not parse: {0}")]
    Parse(String),
    #[error("the kubeconfig in ConfigMap kube-public/cluster-info must have exactly one cluster, it has {0}")]
    Clusters(usize),
    #[error("the kubeconfig in ConfigMap kube-public/cluster-info has no {0}")]
    Missing(&'static str),
    #[error("the certificate-authority-data in ConfigMap kube-public/cluster-info holds no usable PEM certificate")]
    Ca,
}

/// The kubeconfig of `cluster-info`, byte for byte as `clientcmd.Write` renders kubeadm's
/// `{Clusters: {"": {Server, CertificateAuthorityData}}}`.
pub fn kubeconfig(server: &str, ca_pem: &[u8]) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {{}}\nusers: null\n",
        STANDARD.encode(ca_pem)
    )
}

/// The ConfigMap with `kubeconfig` and a signature for each of `signing` tokens.
pub fn config_map(kubeconfig: &str, signing: &[&BootstrapToken]) -> ConfigMap {
    let mut data = BTreeMap::from([(KUBECONFIG_KEY.to_string(), kubeconfig.to_string())]);
    sign(&mut data, signing);
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CLUSTER_INFO.into()),
            namespace: Some(KUBE_PUBLIC.into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// Sets (or replaces) the signature of each token in `data`, over `data["kubeconfig"]`; other
/// tokens' signatures are left as they are (the bootstrapsigner owns those).
pub fn sign(data: &mut BTreeMap<String, String>, signing: &[&BootstrapToken]) {
    let content = data.get(KUBECONFIG_KEY).cloned().unwrap_or_default();
    for token in signing {
        data.insert(
            jws::signature_key(token),
            jws::detached_signature(&content, token),
        );
    }
}

/// Removes token `id`'s signature (after the token is deleted).
pub fn unsign(data: &mut BTreeMap<String, String>, id: &str) -> bool {
    data.remove(&format!("{JWS_KEY_PREFIX}{id}")).is_some()
}

/// Reads a `cluster-info` kubeconfig: exactly one cluster, with a server and a CA.
pub fn parse(kubeconfig: &str) -> Result<ClusterInfo, ClusterInfoError> {
    let parsed = kube::config::Kubeconfig::from_yaml(kubeconfig)
        .map_err(|e| ClusterInfoError::Parse(e.to_string()))?;
    let [named] = parsed.clusters.as_slice() else {
        return Err(ClusterInfoError::Clusters(parsed.clusters.len()));
    };
    let cluster = named
        .cluster
        .as_ref()
        .ok_or(ClusterInfoError::Missing("cluster"))?;
    let server = cluster
        .server
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or(ClusterInfoError::Missing("server"))?;
    let ca_b64 = cluster
        .certificate_authority_data
        .as_deref()
        .ok_or(ClusterInfoError::Missing("certificate-authority-data"))?;
    if ca_b64.len() > MAX_CA_BYTES * 4 / 3 + 4 {
        return Err(ClusterInfoError::Ca);
    }
    let ca = STANDARD
        .decode(ca_b64.trim())
        .map_err(|_| ClusterInfoError::Ca)?;
    let ca_pem = String::from_utf8(ca).map_err(|_| ClusterInfoError::Ca)?;
    let info = ClusterInfo { server, ca_pem };
    if info.ca_ders().is_empty() {
        return Err(ClusterInfoError::Ca);
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn kubeconfig_is_clientcmds_and_parses_back() {
        let ca = ca_pem();
        let text = kubeconfig("https://10.0.0.1:6443", ca.as_bytes());
        assert!(text.starts_with(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0t"
        ));
        assert!(text.ends_with("    server: https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n"));
        let info = parse(&text).unwrap();
        assert_eq!(info.server, "https://10.0.0.1:6443");
        assert_eq!(info.ca_pem, ca);
        assert_eq!(info.ca_ders().len(), 1);
    }

    #[test]
    fn config_map_is_signed_per_token() {
        let a: BootstrapToken = "aaaaaa.0123456789abcdef".parse().unwrap();
        let b: BootstrapToken = "bbbbbb.0123456789abcdef".parse().unwrap();
        let text = kubeconfig("https://h:6443", ca_pem().as_bytes());
        let cm = config_map(&text, &[&a, &b]);
        assert_eq!(cm.metadata.namespace.as_deref(), Some("kube-public"));
        let mut data = cm.data.unwrap();
        assert!(jws::is_valid(&data["jws-kubeconfig-aaaaaa"], &text, &a));
        assert!(jws::is_valid(&data["jws-kubeconfig-bbbbbb"], &text, &b));
        assert!(unsign(&mut data, "aaaaaa"));
        assert!(!data.contains_key("jws-kubeconfig-aaaaaa"));
        assert!(!unsign(&mut data, "aaaaaa"));
    }

    #[test]
    fn unusable_kubeconfigs_are_refused() {
        let ca = ca_pem();
        let one = kubeconfig("https://h:6443", ca.as_bytes());
        let two = one.replace(
            "  name: \"\"\n",
            "  name: \"\"\n- cluster:\n    server: https://x\n  name: b\n",
        );
        assert_eq!(parse(&two), Err(ClusterInfoError::Clusters(2)));
        assert_eq!(
            parse(&one.replace("    server: https://h:6443\n", "")),
            Err(ClusterInfoError::Missing("server"))
        );
        assert_eq!(
            parse(&kubeconfig("https://h:6443", b"not pem")),
            Err(ClusterInfoError::Ca)
        );
        assert!(matches!(parse("{{{"), Err(ClusterInfoError::Parse(_))));
    }
}
