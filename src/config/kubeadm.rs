//! kubeadm's v1beta4 `InitConfiguration` and `ClusterConfiguration` documents, with kubeadm's
//! defaults (`cmd/kubeadm/app/apis/kubeadm/v1beta4/defaults.go`, reference §8). Unknown fields are
//! errors; fields boot accepts without acting on them are listed by [`ignored_fields`].

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::{Arg, Cidrs, Endpoint, EnvVar, GoDuration, HostPathMount, Ip};
use crate::pki::KeyAlgorithm;

pub const KUBEADM_API_VERSION: &str = "kubeadm.k8s.io/v1beta4";

/// kubeadm's `InitConfiguration`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct InitConfiguration {
    pub api_version: String,
    pub kind: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bootstrap_tokens: Vec<serde_yaml::Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    pub node_registration: NodeRegistration,
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skip_phases: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patches: Option<Patches>,
    pub timeouts: Timeouts,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeRegistration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cri_socket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<serde_yaml::Value>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubelet_extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_pull_serial: Option<bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiEndpoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<Ip>,
    /// `SetDefaults_APIEndpoint`: 6443.
    pub bind_port: u16,
}

impl Default for ApiEndpoint {
    fn default() -> Self {
        ApiEndpoint {
            advertise_address: None,
            bind_port: 6443,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Patches {
    pub directory: Option<String>,
}

/// v1beta4 `Timeouts` with kubeadm's defaults.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Timeouts {
    pub control_plane_component_health_check: GoDuration,
    pub kubelet_health_check: GoDuration,
    #[serde(rename = "kubernetesAPICall")]
    pub kubernetes_api_call: GoDuration,
    #[serde(rename = "etcdAPICall")]
    pub etcd_api_call: GoDuration,
    pub tls_bootstrap: GoDuration,
    pub discovery: GoDuration,
    pub upgrade_manifests: GoDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let minutes = |m: u64| GoDuration(Duration::from_secs(m * 60));
        Timeouts {
            control_plane_component_health_check: minutes(4),
            kubelet_health_check: minutes(4),
            kubernetes_api_call: minutes(1),
            etcd_api_call: minutes(2),
            tls_bootstrap: minutes(5),
            discovery: minutes(5),
            upgrade_manifests: minutes(5),
        }
    }
}

/// kubeadm's `ClusterConfiguration`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterConfiguration {
    pub api_version: String,
    pub kind: String,
    pub etcd: Etcd,
    pub networking: Networking,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane_endpoint: Option<Endpoint>,
    pub api_server: ApiServer,
    pub controller_manager: ControlPlaneComponent,
    pub scheduler: ControlPlaneComponent,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<Proxy>,
    pub certificates_dir: String,
    pub image_repository: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub feature_gates: BTreeMap<String, bool>,
    pub cluster_name: String,
    pub encryption_algorithm: KeyAlgorithm,
    pub certificate_validity_period: GoDuration,
    pub ca_certificate_validity_period: GoDuration,
}

impl Default for ClusterConfiguration {
    fn default() -> Self {
        ClusterConfiguration {
            api_version: KUBEADM_API_VERSION.into(),
            kind: "ClusterConfiguration".into(),
            etcd: Etcd::default(),
            networking: Networking::default(),
            kubernetes_version: None,
            control_plane_endpoint: None,
            api_server: ApiServer::default(),
            controller_manager: ControlPlaneComponent::default(),
            scheduler: ControlPlaneComponent::default(),
            dns: None,
            proxy: None,
            certificates_dir: "/etc/kubernetes/pki".into(),
            image_repository: "registry.k8s.io".into(),
            feature_gates: BTreeMap::new(),
            cluster_name: "kubernetes".into(),
            encryption_algorithm: KeyAlgorithm::default(),
            // CertificateValidityPeriod and CACertificateValidityPeriod (constants.go).
            certificate_validity_period: GoDuration(Duration::from_secs(8760 * 3600)),
            ca_certificate_validity_period: GoDuration(Duration::from_secs(87600 * 3600)),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Etcd {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalEtcd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalEtcd>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalEtcd {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
    pub data_dir: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
    #[serde(rename = "serverCertSANs", skip_serializing_if = "Vec::is_empty")]
    pub server_cert_sans: Vec<String>,
    #[serde(rename = "peerCertSANs", skip_serializing_if = "Vec::is_empty")]
    pub peer_cert_sans: Vec<String>,
}

impl Default for LocalEtcd {
    fn default() -> Self {
        LocalEtcd {
            image_repository: None,
            image_tag: None,
            data_dir: "/var/lib/etcd".into(),
            extra_args: Vec::new(),
            extra_envs: Vec::new(),
            server_cert_sans: Vec::new(),
            peer_cert_sans: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ExternalEtcd {
    pub endpoints: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ca_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_file: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub key_file: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Networking {
    pub service_subnet: Cidrs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_subnet: Option<Cidrs>,
    pub dns_domain: String,
}

impl Default for Networking {
    fn default() -> Self {
        Networking {
            service_subnet: "10.96.0.0/12".parse().expect("valid default"),
            pod_subnet: None,
            dns_domain: "cluster.local".into(),
        }
    }
}

/// `extraArgs`, `extraVolumes` and `extraEnvs` of one control-plane component.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ControlPlaneComponent {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiServer {
    // Listed rather than flattened: serde cannot combine `flatten` with `deny_unknown_fields`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<HostPathMount>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_envs: Vec<EnvVar>,
    #[serde(rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
}

impl ApiServer {
    pub fn component(&self) -> ControlPlaneComponent {
        ControlPlaneComponent {
            extra_args: self.extra_args.clone(),
            extra_volumes: self.extra_volumes.clone(),
            extra_envs: self.extra_envs.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Dns {
    pub disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Proxy {
    pub disabled: bool,
}

/// Fields boot reads without error but does not act on: `(field path, why)`. Each set one becomes
/// a warning.
pub fn ignored_fields(
    init: &InitConfiguration,
    cluster: &ClusterConfiguration,
) -> Vec<(&'static str, &'static str)> {
    let no_kubelet = "boot runs static pods without a kubelet or a CRI";
    let reg = &init.node_registration;
    let checks: [(bool, &str, &str); 9] = [
        (
            init.patches.is_some(),
            "InitConfiguration.patches",
            "manifest patches are not supported yet; use --templates",
        ),
        (
            reg.cri_socket.is_some(),
            "InitConfiguration.nodeRegistration.criSocket",
            no_kubelet,
        ),
        (
            reg.taints.is_some(),
            "InitConfiguration.nodeRegistration.taints",
            "there is no Node object without a kubelet",
        ),
        (
            !reg.kubelet_extra_args.is_empty(),
            "InitConfiguration.nodeRegistration.kubeletExtraArgs",
            no_kubelet,
        ),
        (
            reg.image_pull_policy.is_some(),
            "InitConfiguration.nodeRegistration.imagePullPolicy",
            "the process runtime pulls no images",
        ),
        (
            reg.image_pull_serial.is_some(),
            "InitConfiguration.nodeRegistration.imagePullSerial",
            "the process runtime pulls no images",
        ),
        (
            cluster.dns.is_some(),
            "ClusterConfiguration.dns",
            "boot installs no addons (no Nodes to run them)",
        ),
        (
            cluster.proxy.is_some(),
            "ClusterConfiguration.proxy",
            "boot installs no addons (no Nodes to run them)",
        ),
        (
            !cluster.feature_gates.is_empty(),
            "ClusterConfiguration.featureGates",
            "kubeadm feature gates do not apply to boot",
        ),
    ];
    checks
        .into_iter()
        .filter(|(set, _, _)| *set)
        .map(|(_, field, why)| (field, why))
        .collect()
}
