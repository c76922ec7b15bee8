//! What a restore runs, rendered from this node's etcd manifest: a one-shot static pod with the
//! etcd pod's image (so the agent's runtime brings the restore tool of the same etcd release:
//! from the image under the OCI runtime, from `binDirs` under the process runtime) running
//! `etcdutl snapshot restore` (etcd 3.5 and later) or `etcdctl snapshot restore` (3.4, which has
//! no etcdutl) into a new single-member cluster of this member alone. Pure.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use crate::version::Version;

/// The restore pod's name and its manifest's file name.
pub const POD_NAME: &str = "etcd-restore";
pub const MANIFEST: &str = "etcd-restore.yaml";

/// What the etcd manifest says that a restore needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdPod {
    pub name: String,
    pub peer_url: String,
    pub data_dir: PathBuf,
    pub image: String,
    /// `--initial-cluster` as the manifest names it: `name=peer,…`.
    pub initial_cluster: Vec<(String, String)>,
    pub cluster_token: Option<String>,
}

impl EtcdPod {
    /// Reads the etcd container's flags; `Err` names what is missing.
    pub fn from_manifest(bytes: &[u8]) -> Result<EtcdPod, String> {
        let pod: Pod = serde_yaml::from_slice(bytes).map_err(|e| e.to_string())?;
        let container = pod
            .spec
            .and_then(|s| s.containers.into_iter().next())
            .ok_or("no container")?;
        let words: Vec<String> = container
            .command
            .into_iter()
            .flatten()
            .chain(container.args.into_iter().flatten())
            .collect();
        let flag = |name: &str| {
            let prefix = format!("--{name}=");
            words
                .iter()
                .rev()
                .find_map(|w| w.strip_prefix(&prefix).map(str::to_string))
        };
        let required = |name: &str| flag(name).ok_or(format!("the etcd command has no --{name}"));
        let data_dir = PathBuf::from(required("data-dir")?);
        if !data_dir.is_absolute()
            || data_dir.parent().is_none_or(|p| p == Path::new("/"))
            || data_dir
                .components()
                .any(|c| c == std::path::Component::ParentDir)
        {
            return Err(format!(
                "--data-dir {} is not an absolute directory below a parent",
                data_dir.display()
            ));
        }
        let initial_cluster = flag("initial-cluster")
            .unwrap_or_default()
            .split(',')
            .filter_map(|m| m.split_once('='))
            .map(|(n, u)| (n.to_string(), u.to_string()))
            .collect();
        Ok(EtcdPod {
            name: required("name")?,
            peer_url: required("initial-advertise-peer-urls")?
                .split(',')
                .next()
                .unwrap_or_default()
                .to_string(),
            data_dir,
            image: container.image.unwrap_or_default(),
            initial_cluster,
            cluster_token: flag("initial-cluster-token"),
        })
    }
}

/// The restore command for etcd `release`: the snapshot `snapshot` into `target` (a directory
/// that does not exist yet), as a cluster of this member alone. From etcd 3.5.10 the revision is
/// bumped and the old ones marked compacted, so that clients that saw newer revisions before
/// the restore (watches, informers) re-list instead of waiting for revisions that will never
/// come (Kubernetes' etcd restore guide).
pub fn command(release: &Version, etcd: &EtcdPod, snapshot: &Path, target: &Path) -> Vec<String> {
    let tool = if release.at_least(3, 5, 0) {
        "etcdutl"
    } else {
        "etcdctl"
    };
    let mut command = vec![
        tool.to_string(),
        "snapshot".into(),
        "restore".into(),
        snapshot.display().to_string(),
        format!("--data-dir={}", target.display()),
        format!("--name={}", etcd.name),
        format!("--initial-cluster={}={}", etcd.name, etcd.peer_url),
        format!("--initial-advertise-peer-urls={}", etcd.peer_url),
    ];
    if let Some(token) = &etcd.cluster_token {
        command.push(format!("--initial-cluster-token={token}"));
    }
    if release.at_least(3, 5, 10) {
        command.push("--bump-revision=1000000000".into());
        command.push("--mark-compacted".into());
    }
    command
}

/// The one-shot pod that runs `command` with the etcd image, the staging directory mounted at
/// its own path (the snapshot copy is in it, the data is restored into it).
pub fn manifest(etcd: &EtcdPod, command: &[String], staging: &Path) -> String {
    let staging = staging.display().to_string();
    let yaml = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": POD_NAME,
            "namespace": "kube-system",
            "labels": {"component": POD_NAME, "tier": "control-plane"},
        },
        "spec": {
            "hostNetwork": true,
            "restartPolicy": "Never",
            "priorityClassName": "system-node-critical",
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": POD_NAME,
                "image": etcd.image,
                "imagePullPolicy": "IfNotPresent",
                "command": command,
                "env": [{"name": "ETCDCTL_API", "value": "3"}],
                "volumeMounts": [{"name": "staging", "mountPath": staging}],
            }],
            "volumes": [{
                "name": "staging",
                "hostPath": {"path": staging, "type": "Directory"},
            }],
        },
    });
    serde_yaml::to_string(&yaml).expect("a pod serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ETCD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: etcd}\nspec:\n  containers:\n  - name: etcd\n    image: registry.k8s.io/etcd:3.6.6-0\n    command:\n    - etcd\n    - --data-dir=/var/lib/etcd\n    - --name=cp1\n    - --initial-advertise-peer-urls=https://10.0.0.1:2380\n    - --initial-cluster=cp1=https://10.0.0.1:2380,cp2=https://10.0.0.2:2380\n";

    #[test]
    fn the_manifest_gives_the_member_and_its_data() {
        let etcd = EtcdPod::from_manifest(ETCD.as_bytes()).unwrap();
        assert_eq!(etcd.name, "cp1");
        assert_eq!(etcd.data_dir, Path::new("/var/lib/etcd"));
        assert_eq!(etcd.image, "registry.k8s.io/etcd:3.6.6-0");
        assert_eq!(etcd.initial_cluster.len(), 2);
        for (bad, why) in [
            ("--data-dir=/var/lib/etcd", "--data-dir=etcd"),
            ("--data-dir=/var/lib/etcd", "--data-dir=/etcd"),
            ("--data-dir=/var/lib/etcd", "--data-dir=/var/lib/../etcd"),
            ("    - --name=cp1\n", ""),
        ] {
            let text = ETCD.replace(bad, why);
            assert!(EtcdPod::from_manifest(text.as_bytes()).is_err(), "{why}");
        }
    }

    #[test]
    fn each_release_restores_with_its_own_tool_into_one_member() {
        let etcd = EtcdPod::from_manifest(ETCD.as_bytes()).unwrap();
        let snap = Path::new("/s/snapshot.db");
        let data = Path::new("/s/data");
        let v34 = command(&"3.4.23".parse().unwrap(), &etcd, snap, data);
        assert_eq!(v34[0], "etcdctl");
        assert!(v34.contains(&"--initial-cluster=cp1=https://10.0.0.1:2380".to_string()));
        assert!(!v34.iter().any(|w| w.contains("bump")));
        let v36 = command(&"3.6.6-0".parse().unwrap(), &etcd, snap, data);
        assert_eq!(v36[0], "etcdutl");
        assert!(v36.contains(&"--mark-compacted".to_string()));
        let v35 = command(&"3.5.4".parse().unwrap(), &etcd, snap, data);
        assert_eq!(v35[0], "etcdutl");
        assert!(!v35.iter().any(|w| w.contains("bump")));

        let pod: Pod = serde_yaml::from_str(&manifest(&etcd, &v36, Path::new("/s"))).unwrap();
        let spec = pod.spec.unwrap();
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(spec.containers[0].command.as_ref().unwrap(), &v36);
        assert_eq!(
            spec.volumes.unwrap()[0].host_path.as_ref().unwrap().path,
            "/s"
        );
    }
}
