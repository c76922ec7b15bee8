//! This node's own etcd member as its static pod manifest describes it: the name, the peer URL the
//! cluster knows it by, its client URLs, and the etcd client identity beside its CA
//! (`etcd/healthcheck-client.{crt,key}`, signed by the etcd CA as every etcd client must be).
//! Pure: the caller reads the manifest (bounded) and passes the bytes.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::client::{ClientFiles, ClientUrl};

/// The local member, from `etcd.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMember {
    pub name: String,
    pub peer_url: String,
    pub client_urls: Vec<String>,
    pub client_files: ClientFiles,
    /// How many members `--initial-cluster` names: 1 for the node that created the cluster.
    pub initial_members: usize,
}

/// Why a manifest does not describe an etcd member boot can talk to.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ManifestError {
    pub path: PathBuf,
    pub reason: String,
}

impl LocalMember {
    /// Reads the member from the manifest `bytes` found at `path`. File paths in it must lie
    /// under `root` (a manifest under `--root` names prefixed paths); anything else is refused
    /// rather than read.
    pub fn from_manifest(
        path: &Path,
        bytes: &[u8],
        root: &Path,
    ) -> Result<LocalMember, ManifestError> {
        let fail = |reason: String| ManifestError {
            path: path.to_path_buf(),
            reason,
        };
        let pod: Pod = serde_yaml::from_slice(bytes).map_err(|e| fail(e.to_string()))?;
        let command = pod
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .and_then(|c| c.command)
            .unwrap_or_default();
        let flag = |name: &str| {
            let prefix = format!("--{name}=");
            command
                .iter()
                .rev()
                .find_map(|arg| arg.strip_prefix(&prefix).map(str::to_string))
                .ok_or_else(|| fail(format!("the etcd command has no --{name}")))
        };
        let name = flag("name")?;
        let peer_url = first_url(&flag("initial-advertise-peer-urls")?);
        ClientUrl::parse(&peer_url).map_err(|e| fail(e.to_string()))?;
        let client_urls: Vec<String> = flag("advertise-client-urls")?
            .split(',')
            .map(str::to_string)
            .collect();
        for url in &client_urls {
            ClientUrl::parse(url).map_err(|e| fail(e.to_string()))?;
        }
        let initial_members = flag("initial-cluster")
            .map(|c| c.split(',').count())
            .unwrap_or(1);
        let ca = PathBuf::from(flag("trusted-ca-file")?);
        let dir = ca
            .parent()
            .filter(|d| d.is_absolute() && d.starts_with(root))
            .filter(|d| !d.components().any(|c| c == std::path::Component::ParentDir))
            .ok_or_else(|| {
                fail(format!(
                    "--trusted-ca-file {} is not beneath {}",
                    ca.display(),
                    root.display()
                ))
            })?
            .to_path_buf();
        Ok(LocalMember {
            name,
            peer_url,
            client_urls,
            client_files: ClientFiles {
                ca,
                cert: dir.join("healthcheck-client.crt"),
                key: dir.join("healthcheck-client.key"),
            },
            initial_members,
        })
    }
}

fn first_url(list: &str) -> String {
    list.split(',').next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(ca: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: etcd\nspec:\n  containers:\n  - name: etcd\n    command:\n    - etcd\n    - --advertise-client-urls=https://10.0.0.2:2379\n    - --initial-advertise-peer-urls=https://10.0.0.2:2380\n    - --initial-cluster=cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380\n    - --name=cp2\n    - --trusted-ca-file={ca}\n"
        )
    }

    #[test]
    fn the_member_and_its_client_identity_come_from_the_flags() {
        let m = LocalMember::from_manifest(
            Path::new("etcd.yaml"),
            manifest("/r/etc/kubernetes/pki/etcd/ca.crt").as_bytes(),
            Path::new("/r"),
        )
        .unwrap();
        assert_eq!(m.name, "cp2");
        assert_eq!(m.peer_url, "https://10.0.0.2:2380");
        assert_eq!(m.client_urls, ["https://10.0.0.2:2379"]);
        assert_eq!(m.initial_members, 2);
        assert_eq!(
            m.client_files.cert,
            Path::new("/r/etc/kubernetes/pki/etcd/healthcheck-client.crt")
        );
    }

    #[test]
    fn paths_outside_the_root_and_missing_flags_are_refused() {
        for ca in [
            "/etc/kubernetes/pki/etcd/ca.crt",
            "/r/../etc/etcd/ca.crt",
            "ca.crt",
        ] {
            let err = LocalMember::from_manifest(
                Path::new("etcd.yaml"),
                manifest(ca).as_bytes(),
                Path::new("/r"),
            )
            .unwrap_err();
            assert!(err.reason.contains("not beneath"), "{ca}: {err}");
        }
        let bare =
            b"apiVersion: v1\nkind: Pod\nmetadata: {}\nspec:\n  containers: [{name: etcd}]\n";
        let err =
            LocalMember::from_manifest(Path::new("etcd.yaml"), bare, Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("--name"), "{err}");
    }
}
