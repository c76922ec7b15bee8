//! boot's own configuration document (`apiVersion: boot/v1alpha1`, `kind: BootConfiguration`) for
//! what kubeadm has no field for: where the component binaries are, pinned component versions,
//! and the agent's options. Defaults mirror the kubelet where the agent stands in for it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::types::GoDuration;

pub const BOOT_API_VERSION: &str = "boot/v1alpha1";

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct BootConfiguration {
    pub api_version: String,
    pub kind: String,
    /// Where `etcd`, `kube-apiserver`, … are looked up, in order, before `PATH`.
    pub bin_dirs: Vec<PathBuf>,
    /// The etcd version to render for (flags and probes differ by version); by default the
    /// version of the `etcd` binary found in `binDirs`, else the one kubeadm pairs with
    /// `kubernetesVersion`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_version: Option<String>,
    /// A directory of templates overriding the built-in ones (same file names).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templates_dir: Option<PathBuf>,
    /// How the agent runs containers: `oci` (the default: the manifest's image, in its own
    /// namespaces) or `process` (host binaries from `binDirs`).
    pub runtime: RuntimeKind,
    pub agent: AgentConfiguration,
    /// Pod networking for pods without `hostNetwork`.
    pub network: NetworkConfiguration,
    pub certificates: CertificatesConfiguration,
    pub encryption_at_rest: EncryptionAtRest,
    pub audit: Audit,
    /// Registry mirrors, credentials and plain-HTTP registries for image pulls.
    pub registries: RegistriesConfiguration,
    /// The agent's scheduled etcd snapshots.
    pub etcd_snapshots: EtcdSnapshots,
}

/// `BootConfiguration.runtime` (and `boot agent --runtime`): the runtime's own kind.
pub use crate::runtime::RuntimeKind;

impl Default for BootConfiguration {
    fn default() -> Self {
        BootConfiguration {
            api_version: BOOT_API_VERSION.into(),
            kind: "BootConfiguration".into(),
            bin_dirs: vec!["/usr/local/bin".into(), "/usr/bin".into()],
            etcd_version: None,
            templates_dir: None,
            runtime: RuntimeKind::default(),
            agent: AgentConfiguration::default(),
            network: NetworkConfiguration::default(),
            certificates: CertificatesConfiguration::default(),
            encryption_at_rest: EncryptionAtRest::default(),
            audit: Audit::default(),
            registries: RegistriesConfiguration::default(),
            etcd_snapshots: EtcdSnapshots::default(),
        }
    }
}

/// Scheduled etcd snapshots, taken by the agent from this node's member (stacked etcd only).
///
/// On by default, twice a day, the five newest kept: the default of k3s and RKE2, where a
/// snapshot is what turns a lost or corrupted etcd into a restore instead of a rebuild. Five
/// snapshots of a small cluster's store cost tens of megabytes; a node that cannot spare that, or
/// that is backed up otherwise, sets `enabled: false`. Snapshots on the node do not survive the
/// node's disk: copy them off (`boot etcd snapshot ls` lists them).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EtcdSnapshots {
    pub enabled: bool,
    /// A five-field cron schedule in UTC (k3s's default `0 */12 * * *`).
    pub schedule: String,
    /// Scheduled snapshots kept; older ones are removed after each new one. Snapshots saved by
    /// hand or before an upgrade are never removed by the schedule.
    pub retention: u32,
    /// Where snapshots go (0700); under `--root`.
    pub directory: PathBuf,
}

impl Default for EtcdSnapshots {
    fn default() -> Self {
        EtcdSnapshots {
            enabled: true,
            schedule: "0 */12 * * *".into(),
            retention: 5,
            directory: crate::etcd::snapshot::DEFAULT_DIR.into(),
        }
    }
}

/// How `boot init` runs the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    /// systemd when it is the init system, else a detached daemon.
    #[default]
    Auto,
    Systemd,
    Detach,
    Foreground,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentConfiguration {
    pub mode: AgentMode,
    /// The kubelet's healthz address (`healthzBindAddress:healthzPort`, 127.0.0.1:10248).
    pub status_address: String,
    /// Full re-list of the manifest directory; notify does the real work, this catches what a
    /// watch can miss. The kubelet re-lists every 20s (`fileCheckFrequency`).
    pub relist_period: GoDuration,
    pub stop_pods_on_exit: bool,
    pub backoff: Backoff,
}

impl Default for AgentConfiguration {
    fn default() -> Self {
        AgentConfiguration {
            mode: AgentMode::Auto,
            status_address: "127.0.0.1:10248".into(),
            relist_period: GoDuration(Duration::from_secs(2)),
            stop_pods_on_exit: false,
            backoff: Backoff::default(),
        }
    }
}

/// CrashLoopBackOff (kubelet.go: `MaxContainerBackOff` 300s, initial 10s, reset after 600s).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Backoff {
    pub initial: GoDuration,
    pub max: GoDuration,
    pub reset_after: GoDuration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: GoDuration(Duration::from_secs(10)),
            max: GoDuration(Duration::from_secs(300)),
            reset_after: GoDuration(Duration::from_secs(600)),
        }
    }
}

/// Pod networking through CNI, with the kubelet's and containerd's paths (reference §12).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkConfiguration {
    /// Where a CNI configuration is looked for (the first `.conflist`/`.conf`/`.json` wins); boot
    /// never writes there. Under `--root`.
    pub conf_dir: PathBuf,
    /// Where the plugins are looked up, in order: upstream's directory, then Debian's.
    pub bin_dirs: Vec<PathBuf>,
    /// The node-local range of boot's default bridge network, used when `confDir` holds no
    /// configuration; it must not overlap the cluster's pod or service subnets.
    pub default_subnet: ipnet::Ipv4Net,
}

impl Default for NetworkConfiguration {
    fn default() -> Self {
        use crate::runtime::network::{
            default::DEFAULT_SUBNET, DEFAULT_BIN_DIRS, DEFAULT_CONF_DIR,
        };
        NetworkConfiguration {
            conf_dir: DEFAULT_CONF_DIR.into(),
            bin_dirs: DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
            default_subnet: DEFAULT_SUBNET.parse().expect("a valid default subnet"),
        }
    }
}

/// Where images come from, in the spirit of containerd's `hosts.toml` and k3s's
/// `registries.yaml`:
///
/// ```yaml
/// registries:
///   mirrors:
///     registry.k8s.io: { endpoints: ["https://mirror.example.com"] }
///   configs:
///     mirror.example.com: { username: u, password: p }
///     10.0.0.5:5000: { insecure: true }
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistriesConfiguration {
    /// Registry host (`docker.io`, `registry.k8s.io`) → mirrors tried in order before it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub mirrors: BTreeMap<String, RegistryMirror>,
    /// Registry or mirror host (`host[:port]`) → how to talk to it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, RegistryHostConfig>,
    /// The docker `config.json` the kubelet reads for node credentials (`<root-dir>/config.json`).
    pub credentials_file: PathBuf,
}

impl Default for RegistriesConfiguration {
    fn default() -> Self {
        RegistriesConfiguration {
            mirrors: BTreeMap::new(),
            configs: BTreeMap::new(),
            credentials_file: "/var/lib/kubelet/config.json".into(),
        }
    }
}

/// Certificates over time.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CertificatesConfiguration {
    /// A leaf certificate is due for renewal once less than this is left; by default a third of
    /// its validity period (Talos renews at half, k3s and RKE2 120 days ahead).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<GoDuration>,
}

/// Encryption at rest for the API server (off in kubeadm; on by default in boot).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct EncryptionAtRest {
    pub enabled: bool,
    pub provider: EncryptionProvider,
    /// What is encrypted: `secrets` by default; add `configmaps` if they hold secrets too.
    pub resources: Vec<String>,
}

impl Default for EncryptionAtRest {
    fn default() -> Self {
        EncryptionAtRest {
            enabled: true,
            provider: EncryptionProvider::Secretbox,
            resources: vec!["secrets".into()],
        }
    }
}

/// The providers that take a static 32-byte key (the API server's `secretbox` and `aescbc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EncryptionProvider {
    /// XSalsa20-Poly1305: authenticated, the upstream recommendation among static-key providers.
    Secretbox,
    Aescbc,
}

impl EncryptionProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptionProvider::Secretbox => "secretbox",
            EncryptionProvider::Aescbc => "aescbc",
        }
    }
}

/// The API server's audit log (off in kubeadm; on by default in boot).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Audit {
    pub enabled: bool,
    /// `--audit-log-maxage`: days to keep rotated files.
    pub max_age: u32,
    /// `--audit-log-maxbackup`: rotated files to keep.
    pub max_backup: u32,
    /// `--audit-log-maxsize`: megabytes before a file is rotated.
    pub max_size: u32,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            enabled: true,
            max_age: 30,
            max_backup: 10,
            max_size: 100,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryMirror {
    /// `https://host[:port]` or, for an insecure mirror, `http://host[:port]`.
    pub endpoints: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RegistryHostConfig {
    /// Plain HTTP (loopback registries get it without asking).
    pub insecure: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// base64 `user:password`, as in a docker `config.json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
}
