//! The hostPath volumes of the control-plane pods (kubeadm's `volumes.go`, reference §4.7):
//! defaults, the optional CA directories that exist on the host, and `extraVolumes` overriding
//! defaults of the same name.

use serde::Serialize;

use super::flags::Paths;
use crate::config::{Config, HostPathMount, HostPathType};

#[derive(Debug, Clone, Serialize)]
pub struct VolumeSpec {
    pub name: String,
    pub host_path: String,
    pub mount_path: String,
    pub path_type: &'static str,
    pub read_only: bool,
}

/// The CA directories kubeadm mounts into the apiserver and controller-manager only when they
/// exist on the host (`caCertsExtraVolumePaths`, volumes.go).
pub const OPTIONAL_CA_DIRS: &[(&str, &str)] = &[
    ("etc-ca-certificates", "/etc/ca-certificates"),
    ("etc-pki-ca-trust", "/etc/pki/ca-trust"),
    ("etc-pki-tls-certs", "/etc/pki/tls/certs"),
    (
        "usr-local-share-ca-certificates",
        "/usr/local/share/ca-certificates",
    ),
    ("usr-share-ca-certificates", "/usr/share/ca-certificates"),
];

pub fn volume(name: &str, path: &str, path_type: HostPathType, read_only: bool) -> VolumeSpec {
    VolumeSpec {
        name: name.into(),
        host_path: path.into(),
        mount_path: path.into(),
        path_type: path_type.as_str(),
        read_only,
    }
}

/// Defaults, then `extraVolumes` replacing defaults of the same name, sorted by name.
pub fn merge_volumes(mut defaults: Vec<VolumeSpec>, extra: &[HostPathMount]) -> Vec<VolumeSpec> {
    defaults.retain(|d| !extra.iter().any(|e| e.name == d.name));
    defaults.extend(extra.iter().map(|e| VolumeSpec {
        name: e.name.clone(),
        host_path: e.host_path.clone(),
        mount_path: e.mount_path.clone(),
        path_type: e.path_type.unwrap_or(HostPathType::Unset).as_str(),
        read_only: e.read_only,
    }));
    defaults.sort_by(|a, b| a.name.cmp(&b.name));
    defaults
}

pub fn ca_volumes(cfg: &Config, paths: &Paths) -> Vec<VolumeSpec> {
    let mut volumes = vec![
        volume(
            "ca-certs",
            "/etc/ssl/certs",
            HostPathType::DirectoryOrCreate,
            true,
        ),
        volume(
            "k8s-certs",
            &paths.cert_dir,
            HostPathType::DirectoryOrCreate,
            true,
        ),
    ];
    for (name, dir) in OPTIONAL_CA_DIRS {
        if cfg.host.existing_ca_dirs.iter().any(|d| d == dir) {
            volumes.push(volume(name, dir, HostPathType::DirectoryOrCreate, true));
        }
    }
    volumes
}
