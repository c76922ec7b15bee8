//! Turning the parsed documents into one resolved [`Config`]: kubeadm's defaults, then the flags,
//! then what only the host can tell (hostname, the default route's address, binary versions).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::boot::BootConfiguration;
use super::error::ConfigError;
use super::kubeadm::{ClusterConfiguration, InitConfiguration, LocalEtcd, KUBEADM_API_VERSION};
use super::load::{DocumentSource, Documents};
use super::types::{bracket_host, Cidrs, Endpoint, Ip};
use super::validate;
use crate::version::{self, Version};

/// Command-line flags that override the file (kubeadm's `init` flags of the same names).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub node_name: Option<String>,
    pub advertise_address: Option<String>,
    pub control_plane_endpoint: Option<String>,
    pub kubernetes_version: Option<String>,
    pub pod_network_cidr: Option<String>,
    pub service_cidr: Option<String>,
    pub cert_dir: Option<String>,
}

/// What the host says when the configuration does not: injectable so tests need no real host.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub hostname: String,
    pub default_address: Option<IpAddr>,
    /// `kube-apiserver --version` found in the binary directories.
    pub kubernetes_binary: Option<Version>,
    /// `etcd --version` found in the binary directories.
    pub etcd_binary: Option<Version>,
    /// kubeadm copies its own `*_proxy` variables into the pods (`GetProxyEnvVars`).
    pub proxy_env: Vec<(String, String)>,
    /// Which of the optional CA directories (`/etc/pki/ca-trust`, …) exist on this host; kubeadm
    /// mounts only those.
    pub existing_ca_dirs: Vec<String>,
}

/// The resolved configuration every later stage reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub init: InitConfiguration,
    pub cluster: ClusterConfiguration,
    pub boot: BootConfiguration,
    /// `KubeletConfiguration.staticPodPath`, else `/etc/kubernetes/manifests`.
    pub static_pod_path: String,
    /// `KubeletConfiguration.address`, else the kubelet's `0.0.0.0`.
    pub kubelet_address: String,
    /// `KubeletConfiguration.port`, else the kubelet's 10250.
    pub kubelet_port: u16,
    pub node_name: String,
    pub advertise_address: IpAddr,
    pub kubernetes_version: Version,
    /// The etcd version manifests are rendered for (flags and probes differ by version).
    pub etcd_version: Version,
    /// Fields accepted without effect, and other things the user should know.
    pub warnings: Vec<String>,
    /// The host facts the configuration was resolved against.
    pub host: HostFacts,
}

impl Config {
    /// Defaults, then the file's documents, then the flags, then the host's facts; validated.
    pub fn build(
        docs: Documents,
        overrides: &Overrides,
        host: &HostFacts,
    ) -> Result<Config, ConfigError> {
        let Documents {
            init,
            cluster,
            boot,
            join: _,
            static_pod_path,
            kubelet_address,
            kubelet_port,
            sources,
            mut warnings,
        } = docs;
        let mut init = init.unwrap_or_default();
        let mut cluster = cluster.unwrap_or_default();
        let boot = boot.unwrap_or_default();
        apply_overrides(&mut init, &mut cluster, overrides)?;
        if cluster.etcd.local.is_none() && cluster.etcd.external.is_none() {
            cluster.etcd.local = Some(LocalEtcd::default());
        }
        init.api_version = KUBEADM_API_VERSION.into();
        init.kind = "InitConfiguration".into();
        cluster.api_version = KUBEADM_API_VERSION.into();
        cluster.kind = "ClusterConfiguration".into();
        validate::documents(&init, &cluster, &sources)?;
        validate::pod_network(&boot, &cluster, &sources)?;
        validate::renewal_window(&boot, &cluster, &sources)?;
        validate::boot(&boot, &sources)?;

        let node_name = match &init.node_registration.name {
            Some(name) => name.clone(),
            None => host.hostname.to_lowercase(),
        };
        validate::node_name(&node_name, &sources)?;
        init.node_registration.name = Some(node_name.clone());
        let advertise_address = match init.local_api_endpoint.advertise_address {
            Some(Ip(ip)) => ip,
            None => host.default_address.ok_or_else(|| {
                ConfigError::flag(
                    "InitConfiguration.localAPIEndpoint.advertiseAddress",
                    "not set and this host has no default route",
                )
                .with_hint(
                    "pass --apiserver-advertise-address or set localAPIEndpoint.advertiseAddress",
                )
            })?,
        };
        init.local_api_endpoint.advertise_address = Some(Ip(advertise_address));

        let kubernetes_version = resolve_kubernetes_version(&cluster, host, &sources)?;
        cluster.kubernetes_version = Some(format!("v{kubernetes_version}"));
        let etcd_version =
            resolve_etcd_version(&cluster, &boot, &kubernetes_version, host, &sources)?;

        for (field, why) in super::kubeadm::ignored_fields(&init, &cluster) {
            warnings.push(format!("{field} has no effect: {why}"));
        }
        let static_pod_path = static_pod_path.unwrap_or_else(|| "/etc/kubernetes/manifests".into());
        Ok(Config {
            init,
            cluster,
            boot,
            static_pod_path,
            kubelet_address: kubelet_address.unwrap_or_else(|| "0.0.0.0".into()),
            kubelet_port: kubelet_port.unwrap_or(10250),
            node_name,
            advertise_address,
            kubernetes_version,
            etcd_version,
            warnings,
            host: host.clone(),
        })
    }

    pub fn bind_port(&self) -> u16 {
        self.init.local_api_endpoint.bind_port
    }

    pub fn is_ipv6(&self) -> bool {
        self.advertise_address.is_ipv6()
    }

    /// `https://<advertiseAddress>:<bindPort>`: what controller-manager and scheduler use.
    pub fn local_api_url(&self) -> String {
        format!(
            "https://{}:{}",
            bracket_host(&self.advertise_address.to_string()),
            self.bind_port()
        )
    }

    /// The controlPlaneEndpoint's URL, or the local one without an endpoint (admin kubeconfigs).
    pub fn control_plane_url(&self) -> String {
        match &self.cluster.control_plane_endpoint {
            Some(endpoint) => endpoint.url(self.bind_port()),
            None => self.local_api_url(),
        }
    }

    /// The first IP of the first service CIDR (`10.96.0.1`): the `kubernetes` Service's address.
    pub fn first_service_ip(&self) -> IpAddr {
        first_ip(&self.cluster.networking.service_subnet)
    }

    pub fn local_etcd(&self) -> Option<&LocalEtcd> {
        self.cluster.etcd.local.as_ref()
    }

    /// `<imageRepository>/<component>:<tag>` (kubeadm `images.go`).
    pub fn component_image(&self, component: &str) -> String {
        let tag = version::image_tag(&format!("v{}", self.kubernetes_version));
        format!("{}/{component}:{tag}", self.cluster.image_repository)
    }

    pub fn etcd_image(&self) -> String {
        let local = self.local_etcd();
        let repository = local
            .and_then(|l| l.image_repository.clone())
            .unwrap_or_else(|| self.cluster.image_repository.clone());
        let tag = local
            .and_then(|l| l.image_tag.clone())
            .unwrap_or_else(|| version::etcd_tag_for(&self.kubernetes_version).to_string());
        format!("{repository}/etcd:{tag}")
    }

    /// The certificates directory as written in the configuration (a host path, not yet rooted).
    pub fn cert_dir(&self) -> &Path {
        Path::new(&self.cluster.certificates_dir)
    }

    pub fn bin_dirs(&self) -> &[PathBuf] {
        &self.boot.bin_dirs
    }
}

fn first_ip(cidrs: &Cidrs) -> IpAddr {
    match cidrs.first().network() {
        IpAddr::V4(net) => IpAddr::V4((u32::from(net) + 1).into()),
        IpAddr::V6(net) => IpAddr::V6((u128::from(net) + 1).into()),
    }
}

fn apply_overrides(
    init: &mut InitConfiguration,
    cluster: &mut ClusterConfiguration,
    o: &Overrides,
) -> Result<(), ConfigError> {
    fn parsed<T: std::str::FromStr<Err = String>>(
        flag: &str,
        value: &Option<String>,
    ) -> Result<Option<T>, ConfigError> {
        value
            .as_deref()
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ConfigError::flag(flag, format!("{v:?} {e}")))
            })
            .transpose()
    }
    if let Some(name) = &o.node_name {
        init.node_registration.name = Some(name.clone());
    }
    if let Some(ip) = parsed::<Ip>("--apiserver-advertise-address", &o.advertise_address)? {
        init.local_api_endpoint.advertise_address = Some(ip);
    }
    if let Some(endpoint) =
        parsed::<Endpoint>("--control-plane-endpoint", &o.control_plane_endpoint)?
    {
        cluster.control_plane_endpoint = Some(endpoint);
    }
    if let Some(version) = &o.kubernetes_version {
        cluster.kubernetes_version = Some(version.clone());
    }
    if let Some(pods) = parsed::<Cidrs>("--pod-network-cidr", &o.pod_network_cidr)? {
        cluster.networking.pod_subnet = Some(pods);
    }
    if let Some(services) = parsed::<Cidrs>("--service-cidr", &o.service_cidr)? {
        cluster.networking.service_subnet = services;
    }
    if let Some(dir) = &o.cert_dir {
        cluster.certificates_dir = dir.clone();
    }
    Ok(())
}

fn resolve_kubernetes_version(
    cluster: &ClusterConfiguration,
    host: &HostFacts,
    sources: &[DocumentSource],
) -> Result<Version, ConfigError> {
    match cluster.kubernetes_version.as_deref() {
        Some(text) if !text.starts_with("stable") && !text.starts_with("latest") => {
            text.parse().map_err(|e: version::VersionError| {
                validate::error_at(
                    sources,
                    "ClusterConfiguration",
                    &["kubernetesVersion"],
                    e.to_string(),
                )
            })
        }
        _ => Ok(host.kubernetes_binary.clone().unwrap_or_else(|| {
            version::DEFAULT_KUBERNETES_VERSION
                .parse()
                .expect("valid default")
        })),
    }
}

/// Pinned `etcdVersion`, else the etcd binary on the host, else `etcd.local.imageTag`, else the
/// version kubeadm pairs with the Kubernetes version.
fn resolve_etcd_version(
    cluster: &ClusterConfiguration,
    boot: &BootConfiguration,
    kubernetes: &Version,
    host: &HostFacts,
    sources: &[DocumentSource],
) -> Result<Version, ConfigError> {
    if let Some(pinned) = &boot.etcd_version {
        return pinned.parse().map_err(|e: version::VersionError| {
            validate::error_at(
                sources,
                "BootConfiguration",
                &["etcdVersion"],
                e.to_string(),
            )
        });
    }
    if let Some(found) = &host.etcd_binary {
        return Ok(found.clone());
    }
    let tag = cluster
        .etcd
        .local
        .as_ref()
        .and_then(|l| l.image_tag.clone());
    let tag = tag.unwrap_or_else(|| version::etcd_tag_for(kubernetes).to_string());
    tag.parse().map_err(|e: version::VersionError| {
        validate::error_at(
            sources,
            "ClusterConfiguration",
            &["etcd", "local", "imageTag"],
            e.to_string(),
        )
        .with_hint("pin the etcd version with BootConfiguration.etcdVersion")
    })
}
