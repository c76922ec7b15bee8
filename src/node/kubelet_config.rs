//! The kubelet's configuration file as kubeadm's `kubelet-start` phase writes it
//! (`/var/lib/kubelet/config.yaml`, a `kubelet.config.k8s.io/v1beta1` `KubeletConfiguration`): `boot
//! init` renders it, and the agent reads it as the kubelet reads its `--config`. Only the fields the
//! agent honours are written; a file with more (a real kubeadm one) is read, the rest ignored.
//!
//! Pure apart from [`read`], which reads the file (bounded).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{Config, GoDuration};
use crate::host::{HostRoot, RenderedFile};

/// kubeadm's `KubeletConfigurationFileName` under `KubeletRunDirectory`.
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
/// Where the kubelet keeps its serving certificate (`--cert-dir`, `/var/lib/kubelet/pki`).
pub const KUBELET_PKI_DIR: &str = "/var/lib/kubelet/pki";
/// The kubelet's `port` default (`ports.KubeletPort`).
pub const DEFAULT_PORT: u16 = 10250;
/// A configuration file is a few hundred bytes; anything far larger is not one.
const MAX_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct KubeletConfiguration {
    pub api_version: String,
    pub kind: String,
    pub static_pod_path: String,
    /// Where the kubelet API listens (`0.0.0.0`).
    pub address: String,
    pub port: u16,
    pub authentication: Authentication,
    pub authorization: Authorization,
    /// The serving certificate; when missing, the agent issues one signed by the cluster CA.
    pub tls_cert_file: String,
    pub tls_private_key_file: String,
    pub node_status_update_frequency: GoDuration,
    pub node_status_report_frequency: GoDuration,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Authentication {
    pub anonymous: Enabled,
    pub webhook: Enabled,
    pub x509: X509,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Enabled {
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct X509 {
    #[serde(rename = "clientCAFile")]
    pub client_ca_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Authorization {
    /// `Webhook` (kubeadm's) or `AlwaysAllow`.
    pub mode: String,
}

impl Default for Authorization {
    fn default() -> Self {
        Authorization {
            mode: "Webhook".into(),
        }
    }
}

impl Default for KubeletConfiguration {
    /// The kubelet's v1beta1 defaults for the fields boot honours.
    fn default() -> Self {
        KubeletConfiguration {
            api_version: "kubelet.config.k8s.io/v1beta1".into(),
            kind: "KubeletConfiguration".into(),
            static_pod_path: String::new(),
            address: "0.0.0.0".into(),
            port: DEFAULT_PORT,
            authentication: Authentication {
                anonymous: Enabled { enabled: false },
                webhook: Enabled { enabled: true },
                x509: X509::default(),
            },
            authorization: Authorization::default(),
            tls_cert_file: String::new(),
            tls_private_key_file: String::new(),
            node_status_update_frequency: GoDuration(Duration::from_secs(10)),
            node_status_report_frequency: GoDuration(Duration::from_secs(300)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KubeletConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is over {MAX_BYTES} bytes; it is not a KubeletConfiguration")]
    TooLarge { path: PathBuf },
    #[error("{path} is not a KubeletConfiguration: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl KubeletConfiguration {
    /// What `boot init` writes: kubeadm's file for this configuration, with every path under the
    /// root (the files reference the prefixed paths, design §4).
    pub fn for_init(cfg: &Config, root: &HostRoot) -> KubeletConfiguration {
        let ca = root.path(cfg.cert_dir()).join("ca.crt");
        let pki = root.path(KUBELET_PKI_DIR);
        let mut file = KubeletConfiguration {
            static_pod_path: root.path(&cfg.static_pod_path).display().to_string(),
            address: cfg.kubelet_address.clone(),
            port: cfg.kubelet_port,
            tls_cert_file: pki.join("kubelet.crt").display().to_string(),
            tls_private_key_file: pki.join("kubelet.key").display().to_string(),
            ..KubeletConfiguration::default()
        };
        file.authentication.x509.client_ca_file = ca.display().to_string();
        file
    }

    /// The file `boot init` writes (0600: kubeadm writes 0644, but boot keeps everything it
    /// writes under `/var/lib` private).
    pub fn rendered(&self, root: &HostRoot) -> RenderedFile {
        let text = serde_yaml::to_string(self).expect("a KubeletConfiguration serializes");
        RenderedFile::new(root.path(KUBELET_CONFIG), 0o600, text)
    }

    /// Parses a file's text; checks what becomes a path, an address or a port.
    pub fn parse(path: &Path, text: &str) -> Result<KubeletConfiguration, KubeletConfigError> {
        let invalid = |reason: String| KubeletConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let parsed: KubeletConfiguration =
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if parsed.kind != "KubeletConfiguration" {
            return Err(invalid(format!("kind is {:?}", parsed.kind)));
        }
        if parsed.address.parse::<std::net::IpAddr>().is_err() {
            return Err(invalid(format!(
                "address {:?} is not an IP",
                parsed.address
            )));
        }
        if parsed.port == 0 {
            return Err(invalid("port is 0".into()));
        }
        for (field, value) in [
            ("staticPodPath", &parsed.static_pod_path),
            ("tlsCertFile", &parsed.tls_cert_file),
            ("tlsPrivateKeyFile", &parsed.tls_private_key_file),
            (
                "authentication.x509.clientCAFile",
                &parsed.authentication.x509.client_ca_file,
            ),
        ] {
            if !value.is_empty() && (!value.starts_with('/') || value.contains('\0')) {
                return Err(invalid(format!(
                    "{field} {value:?} is not an absolute path"
                )));
            }
        }
        if !matches!(
            parsed.authorization.mode.as_str(),
            "Webhook" | "AlwaysAllow"
        ) {
            return Err(invalid(format!(
                "authorization.mode {:?}: boot knows Webhook and AlwaysAllow",
                parsed.authorization.mode
            )));
        }
        Ok(parsed)
    }
}

/// Reads `path` if it exists (`None` when it does not).
pub fn read(path: &Path) -> Result<Option<KubeletConfiguration>, KubeletConfigError> {
    // `--kubelet-config` may name any file: links are followed, as the kubelet follows them.
    let bytes =
        match crate::host::read_bounded_if_exists(path, MAX_BYTES, crate::host::Links::Follow) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(None),
            Err(crate::host::ReadError::TooLarge { .. }) => {
                return Err(KubeletConfigError::TooLarge {
                    path: path.to_path_buf(),
                })
            }
            Err(e) => {
                return Err(KubeletConfigError::Read {
                    path: path.to_path_buf(),
                    source: e.into(),
                })
            }
        };
    let text = String::from_utf8(bytes).map_err(|e| KubeletConfigError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    KubeletConfiguration::parse(path, &text).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_a_kubeadm_file() {
        let mut cfg = KubeletConfiguration {
            static_pod_path: "/etc/kubernetes/manifests".into(),
            ..Default::default()
        };
        cfg.authentication.x509.client_ca_file = "/etc/kubernetes/pki/ca.crt".into();
        let text = serde_yaml::to_string(&cfg).unwrap();
        assert!(text.contains("staticPodPath: /etc/kubernetes/manifests"));
        assert!(text.contains("clientCAFile: /etc/kubernetes/pki/ca.crt"));
        assert_eq!(
            KubeletConfiguration::parse(Path::new("c"), &text).unwrap(),
            cfg
        );
        // kubeadm's own file has many fields boot does not act on: they are ignored.
        let kubeadm = "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: systemd\nclusterDNS: [10.96.0.10]\nstaticPodPath: /etc/kubernetes/manifests\nport: 10251\n";
        let parsed = KubeletConfiguration::parse(Path::new("c"), kubeadm).unwrap();
        assert_eq!((parsed.port, parsed.address.as_str()), (10251, "0.0.0.0"));
        assert_eq!(parsed.authorization.mode, "Webhook");
        assert!(!parsed.authentication.anonymous.enabled);
    }

    #[test]
    fn refuses_what_would_become_a_bad_path_or_port() {
        for bad in [
            "kind: KubeletConfiguration\nstaticPodPath: relative/dir\n",
            "kind: KubeletConfiguration\naddress: not-an-ip\n",
            "kind: KubeletConfiguration\nport: 0\n",
            "kind: Pod\n",
            "kind: KubeletConfiguration\nauthorization: {mode: Magic}\n",
        ] {
            assert!(
                KubeletConfiguration::parse(Path::new("c"), bad).is_err(),
                "{bad}"
            );
        }
    }
}
