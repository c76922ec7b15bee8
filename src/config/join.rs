//! kubeadm's v1beta4 `JoinConfiguration` (`cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go`), the
//! document `boot join --config` reads; the flags override it as kubeadm's do. Pure.

use serde::{Deserialize, Serialize};

use super::kubeadm::{ApiEndpoint, NodeRegistration, Patches, Timeouts};

/// kubeadm's `JoinConfiguration`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct JoinConfiguration {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub node_registration: NodeRegistration,
    /// The cluster CA on this node (kubeadm's default `/etc/kubernetes/pki/ca.crt`); boot writes
    /// the downloaded CA under the ClusterConfiguration's certificatesDir and warns if this differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert_path: Option<String>,
    pub discovery: Discovery,
    /// Present: this node joins as a control-plane node (the only kind boot runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<JoinControlPlane>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Patches>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Discovery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<BootstrapTokenDiscovery>,
    /// File discovery: a kubeconfig (file or https URL) with the cluster's server and CA.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileDiscovery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_bootstrap_token: Option<String>,
}

/// kubeadm's `FileDiscovery`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FileDiscovery {
    pub kube_config_path: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BootstrapTokenDiscovery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_server_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ca_cert_hashes: Vec<String>,
    /// kubeadm spells it `unsafeSkipCAVerification`, not camelCase's `…Ca…`.
    #[serde(
        rename = "unsafeSkipCAVerification",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub unsafe_skip_ca_verification: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_key: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeadm_join_configuration_parses_with_defaults() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\n\
            nodeRegistration:\n  name: cp2\ndiscovery:\n  bootstrapToken:\n    token: abcdef.0123456789abcdef\n\
            \x20   apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [\"sha256:00\"]\n\
            controlPlane:\n  localAPIEndpoint:\n    advertiseAddress: 10.0.0.2\n  certificateKey: ff\n";
        let join: JoinConfiguration = serde_yaml::from_str(text).unwrap();
        let token = join.discovery.bootstrap_token.as_ref().unwrap();
        assert_eq!(token.api_server_endpoint.as_deref(), Some("10.0.0.1:6443"));
        let cp = join.control_plane.as_ref().unwrap();
        assert_eq!(cp.local_api_endpoint.bind_port, 6443);
        assert_eq!(cp.certificate_key.as_deref(), Some("ff"));
        assert_eq!(join.timeouts.etcd_api_call.0.as_secs(), 120);
        let unknown = "apiVersion: v\nkind: JoinConfiguration\ncontrolPlane:\n  nope: 1\n";
        assert!(serde_yaml::from_str::<JoinConfiguration>(unknown).is_err());
    }
}
