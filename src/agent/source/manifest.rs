//! One manifest file → one validated static pod (reference §7 "What it reads" and "Parsing"):
//! YAML (or JSON) decoded as exactly one `v1` `Pod` with a name, files over 10 MB rejected, alias
//! expansion bounded ([`super::yaml`]), and the things a static pod may not use refused:
//! references to API objects (service accounts, secrets, config maps, projected or claim volumes),
//! `envFrom`, `valueFrom` (which the process runtime cannot resolve without an API server) and
//! ephemeral containers. Manifests are untrusted: every field that becomes a path or a name is
//! checked here, once, as the API server's `ValidatePod` would, into the validated types of
//! [`crate::runtime::names`] (UID, namespace, names, volume names, `subPath`, `hostPath`).

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use super::identity::static_pod_uid;
use super::validate::validate;
use super::yaml;
use crate::runtime::names::{self, Namespace, PodName, PodUid};

/// The kubelet's `maxConfigLength` for a manifest file (`pkg/kubelet/config/common.go`).
pub const MAX_MANIFEST_BYTES: u64 = 10 * 1024 * 1024;

/// The namespace a static pod without one lands in (API default).
pub const DEFAULT_NAMESPACE: &str = "default";

/// A manifest that parsed and validated: the pod, where it came from and its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPod {
    /// The manifest file (as listed from the manifest directory).
    pub path: PathBuf,
    /// `metadata.uid`, or the kubelet-style UID: hash of content, node name and path (see
    /// [`super::identity`]).
    pub uid: PodUid,
    /// The hash of content, node name and path, whether or not `metadata.uid` is set: any edit
    /// changes it, and a changed pod is replaced (the kubelet's `config.hash` annotation).
    pub config_hash: String,
    /// `metadata.name`.
    pub name: PodName,
    pub namespace: Namespace,
    /// `<metadata.name>-<lowercase nodeName>`, the name the kubelet gives a static pod.
    pub full_name: PodName,
    pub pod: Pod,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: cannot read the manifest: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: the manifest is {size} bytes, over the kubelet's 10 MB limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("{path}: is {kind}; only regular files are read from the manifest directory")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: not a single v1 Pod: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: pod {pod:?}: {problem}")]
    Invalid {
        path: PathBuf,
        pod: String,
        problem: String,
    },
}

impl ManifestError {
    pub fn path(&self) -> &Path {
        match self {
            ManifestError::Read { path, .. }
            | ManifestError::TooLarge { path, .. }
            | ManifestError::NotRegular { path, .. }
            | ManifestError::Parse { path, .. }
            | ManifestError::Invalid { path, .. } => path,
        }
    }
}

impl StaticPod {
    /// Parses and validates one manifest's bytes read from `path`.
    pub fn parse(path: &Path, bytes: &[u8], node_name: &str) -> Result<StaticPod, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                path: path.to_path_buf(),
                size: bytes.len() as u64,
            });
        }
        let parse_err = |message: String| ManifestError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let text = std::str::from_utf8(bytes).map_err(|e| parse_err(format!("not UTF-8: {e}")))?;
        if let Some(line) = crate::config::too_deep(text) {
            let max = crate::config::MAX_FLOW_DEPTH;
            return Err(parse_err(format!(
                "line {line}: brackets nested deeper than {max} levels"
            )));
        }
        // YAML → JSON → Pod, as the kubelet's tryDecodeSinglePod; serde_yaml refuses several documents.
        let value = yaml::decode(text).map_err(|e| parse_err(e.to_string()))?;
        let pod: Pod = serde_json::from_value(value).map_err(|e| parse_err(e.to_string()))?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let invalid = |problem: String| ManifestError::Invalid {
            path: path.to_path_buf(),
            pod: name.clone(),
            problem,
        };
        if name.is_empty() {
            return Err(invalid(
                "metadata.name is empty; a static pod needs a name".into(),
            ));
        }
        validate(&pod).map_err(invalid)?;
        let field = |field: &str, e: names::InvalidName| invalid(format!("{field}: {e}"));
        let pod_name = PodName::new(name.clone()).map_err(|e| field("metadata.name", e))?;
        let namespace = pod.metadata.namespace.clone().filter(|n| !n.is_empty());
        let namespace = Namespace::new(namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()))
            .map_err(|e| field("metadata.namespace", e))?;
        let canonical = serde_json::to_vec(&pod).map_err(|e| parse_err(e.to_string()))?;
        let path_text = path.to_string_lossy();
        let config_hash = static_pod_uid(&canonical, node_name, &path_text);
        let uid = match pod.metadata.uid.as_deref() {
            Some(uid) if !uid.is_empty() => {
                PodUid::new(uid).map_err(|e| field("metadata.uid", e))?
            }
            _ => PodUid::new(config_hash.clone()).map_err(|e| field("metadata.uid", e))?,
        };
        let full_name = PodName::new(format!("{name}-{}", node_name.to_lowercase()))
            .map_err(|e| field("the static pod's full name <name>-<node>", e))?;
        Ok(StaticPod {
            path: path.to_path_buf(),
            uid,
            config_hash,
            name: pod_name,
            namespace,
            full_name,
            pod,
        })
    }

    pub fn spec(&self) -> &PodSpec {
        static EMPTY: std::sync::OnceLock<PodSpec> = std::sync::OnceLock::new();
        self.pod
            .spec
            .as_ref()
            .unwrap_or_else(|| EMPTY.get_or_init(PodSpec::default))
    }

    pub fn host_network(&self) -> bool {
        self.spec().host_network.unwrap_or(false)
    }

    pub fn init_containers(&self) -> &[Container] {
        self.spec().init_containers.as_deref().unwrap_or(&[])
    }

    pub fn containers(&self) -> &[Container] {
        &self.spec().containers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUSYBOX: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-busybox\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, \"1000\"]\n  restartPolicy: Never\n";

    fn parse(text: &str) -> Result<StaticPod, ManifestError> {
        StaticPod::parse(Path::new("/m/p.yaml"), text.as_bytes(), "Node1")
    }

    #[test]
    fn parses_name_namespace_and_identity() {
        let pod = parse(BUSYBOX).unwrap();
        assert_eq!(pod.full_name.as_str(), "static-busybox-node1");
        assert_eq!(pod.namespace.as_str(), "default");
        assert_eq!(pod.uid.len(), 32);
        // Comments and formatting do not change the identity; content does.
        let again = parse(&format!("# comment\n{BUSYBOX}")).unwrap();
        assert_eq!(again.uid, pod.uid);
        let changed = parse(&BUSYBOX.replace("1000", "999")).unwrap();
        assert_ne!(changed.uid, pod.uid);
    }

    #[test]
    fn refuses_what_static_pods_may_not_use() {
        let cases = [
            (BUSYBOX.replace("static-busybox", "\"\""), "metadata.name is empty"),
            (BUSYBOX.replace("kind: Pod", "kind: Deployment"), "not a single v1 Pod"),
            (format!("{BUSYBOX}---\n{BUSYBOX}"), "not a single v1 Pod"),
            (BUSYBOX.replace("    command", "    envFrom: [{secretRef: {name: s}}]\n    command"), "envFrom"),
            (
                BUSYBOX.replace("    command", "    env: [{name: A, valueFrom: {fieldRef: {fieldPath: x}}}]\n    command"),
                "env[A].valueFrom",
            ),
            (format!("{BUSYBOX}  volumes: [{{name: s, secret: {{secretName: x}}}}]\n"), "secret volume"),
            (format!("{BUSYBOX}  serviceAccountName: default\n"), "serviceAccountName"),
            (BUSYBOX.replace("restartPolicy: Never", "restartPolicy: Sometimes"), "restartPolicy"),
            (BUSYBOX.replace("  containers:\n  - name: c\n    image: busybox\n    command: [sleep, \"1000\"]\n", "  containers: []\n"), "spec.containers is empty"),
        ];
        for (text, expected) in cases {
            let err = parse(&text).expect_err(expected).to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
            assert!(err.starts_with("/m/p.yaml: "), "{err}");
        }
    }

    #[test]
    fn refuses_fields_that_would_become_paths_outside_boots_directories() {
        let with_volume = |mount: &str, volume: &str| {
            BUSYBOX.replace(
                "  restartPolicy: Never\n",
                &format!(
                    "    volumeMounts: [{mount}]\n  restartPolicy: Never\n  volumes: [{volume}]\n"
                ),
            )
        };
        let cases = [
            (
                BUSYBOX.replace(
                    "  name: static-busybox",
                    "  name: static-busybox\n  uid: /etc/shadow",
                ),
                "metadata.uid: \"/etc/shadow\" is not a valid pod UID",
            ),
            (
                BUSYBOX.replace(
                    "  name: static-busybox",
                    "  name: static-busybox\n  uid: '..'",
                ),
                "metadata.uid",
            ),
            (
                BUSYBOX.replace(
                    "  name: static-busybox",
                    "  name: static-busybox\n  namespace: ../../etc",
                ),
                "metadata.namespace",
            ),
            (
                BUSYBOX.replace("  - name: c\n", "  - name: ../c\n"),
                "spec.containers[].name",
            ),
            (
                with_volume("{name: ../v, mountPath: /x}", "{name: ../v, emptyDir: {}}"),
                "spec.volumes[].name",
            ),
            (
                with_volume(
                    "{name: v, mountPath: /x, subPath: ../../etc}",
                    "{name: v, emptyDir: {}}",
                ),
                "subPath \"../../etc\" must not contain '..'",
            ),
            (
                with_volume(
                    "{name: v, mountPath: /x, subPath: /etc}",
                    "{name: v, emptyDir: {}}",
                ),
                "must be a relative path",
            ),
            (
                with_volume("{name: v, mountPath: /x/../y}", "{name: v, emptyDir: {}}"),
                "mountPath",
            ),
            (
                with_volume("{name: w, mountPath: /x}", "{name: v, emptyDir: {}}"),
                "names no volume",
            ),
            (
                with_volume(
                    "{name: v, mountPath: /x}",
                    "{name: v, hostPath: {path: /var/../etc}}",
                ),
                "hostPath.path",
            ),
            (
                with_volume(
                    "{name: v, mountPath: /x}",
                    "{name: v, hostPath: {path: etc}}",
                ),
                "hostPath.path",
            ),
            (
                BUSYBOX.replace(
                    "    command",
                    "    securityContext: {runAsUser: -1}\n    command",
                ),
                "runAsUser: -1 is not a valid",
            ),
            (
                BUSYBOX.replace(
                    "  restartPolicy",
                    "  securityContext: {runAsGroup: -5}\n  restartPolicy",
                ),
                "runAsGroup",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(&text).expect_err(expected).to_string();
            assert!(
                err.contains(expected),
                "{err:?} should contain {expected:?}"
            );
        }
        let ok = BUSYBOX.replace(
            "  name: static-busybox",
            "  name: static-busybox\n  uid: 0b1e0c6c-1c9f-4a4e-9d8e-5f1b7c3a2d10",
        );
        assert_eq!(
            parse(&ok).unwrap().uid.as_str(),
            "0b1e0c6c-1c9f-4a4e-9d8e-5f1b7c3a2d10"
        );
    }

    #[test]
    fn a_set_uid_keeps_the_uid_but_content_changes_the_config_hash() {
        let text = BUSYBOX.replace(
            "  name: static-busybox",
            "  name: static-busybox\n  uid: fixed-uid",
        );
        let pod = parse(&text).unwrap();
        let edited = parse(&text.replace("1000", "999")).unwrap();
        assert_eq!(
            (pod.uid.as_str(), edited.uid.as_str()),
            ("fixed-uid", "fixed-uid")
        );
        assert_ne!(pod.config_hash, edited.config_hash);
        let plain = parse(BUSYBOX).unwrap();
        assert_eq!(plain.uid.as_str(), plain.config_hash);
    }

    #[test]
    fn refuses_alias_bombs_with_a_clear_error() {
        let items = vec!["x"; 3000].join(", ");
        let aliases = vec!["*a"; 3000].join(", ");
        let text = BUSYBOX.replace(
            "    command: [sleep, \"1000\"]\n",
            &format!("    command: [sleep, \"1000\"]\n    args: &a [{items}]\n    env: [{{name: X, value: y}}]\n  x-bomb: [{aliases}]\n"),
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(err.contains("YAML aliases expand the document"), "{err}");
    }

    #[test]
    fn rejects_oversized_files() {
        let big = vec![b' '; MAX_MANIFEST_BYTES as usize + 1];
        assert!(matches!(
            StaticPod::parse(Path::new("/m/big"), &big, "n"),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
