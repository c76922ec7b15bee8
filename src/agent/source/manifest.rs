//! One manifest file → one validated static pod (reference §7 "What it reads" and "Parsing"):
//! YAML (or JSON) decoded as exactly one `v1` `Pod` with a name, files over 10 MB rejected, and the
//! things a static pod may not use refused: references to API objects (service accounts, secrets,
//! config maps, projected or claim volumes), `envFrom`, `valueFrom` (which the process runtime
//! cannot resolve without an API server) and ephemeral containers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use super::identity::static_pod_uid;

/// The kubelet's `maxConfigLength` for a manifest file (`pkg/kubelet/config/common.go`).
pub const MAX_MANIFEST_BYTES: u64 = 10 * 1024 * 1024;

/// The namespace a static pod without one lands in (API default).
pub const DEFAULT_NAMESPACE: &str = "default";

/// A manifest that parsed and validated: the pod, where it came from and its identity.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticPod {
    /// The manifest file (as listed from the manifest directory).
    pub path: PathBuf,
    /// The kubelet-style UID: hash of content, node name and path (see [`super::identity`]).
    pub uid: String,
    /// `metadata.name`.
    pub name: String,
    pub namespace: String,
    /// `<metadata.name>-<lowercase nodeName>`, the name the kubelet gives a static pod.
    pub full_name: String,
    pub pod: Pod,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: cannot read the manifest: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: the manifest is {size} bytes, over the kubelet's 10 MB limit")]
    TooLarge { path: PathBuf, size: u64 },
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
        let value: serde_json::Value =
            serde_yaml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
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
        let namespace = pod.metadata.namespace.clone().filter(|n| !n.is_empty());
        let namespace = namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let canonical = serde_json::to_vec(&pod).map_err(|e| parse_err(e.to_string()))?;
        let path_text = path.to_string_lossy();
        let uid = match pod.metadata.uid.as_deref() {
            Some(uid) if !uid.is_empty() => uid.to_string(),
            _ => static_pod_uid(&canonical, node_name, &path_text),
        };
        let full_name = format!("{name}-{}", node_name.to_lowercase());
        Ok(StaticPod {
            path: path.to_path_buf(),
            uid,
            name,
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

/// The checks of `ValidatePodCreate` that matter to the agent, and `PreventStaticPodAPIReferences`.
fn validate(pod: &Pod) -> Result<(), String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if !is_dns_subdomain(name) {
        return Err(format!(
            "metadata.name {name:?} is not a lowercase DNS subdomain (RFC 1123)"
        ));
    }
    let Some(spec) = &pod.spec else {
        return Err("spec is missing".into());
    };
    if spec.containers.is_empty() {
        return Err("spec.containers is empty; a pod needs at least one container".into());
    }
    match spec.restart_policy.as_deref() {
        None | Some("Always" | "OnFailure" | "Never") => {}
        Some(other) => {
            return Err(format!(
                "spec.restartPolicy {other:?} is not Always, OnFailure or Never"
            ))
        }
    }
    if spec
        .service_account_name
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err("spec.serviceAccountName: static pods may not reference API objects".into());
    }
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|c| !c.is_empty())
    {
        return Err("spec.ephemeralContainers are not allowed in static pods".into());
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return Err("spec.resourceClaims: static pods may not reference API objects".into());
    }
    let mut names = BTreeSet::new();
    let all = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("initContainers", c));
    for (field, container) in all.chain(spec.containers.iter().map(|c| ("containers", c))) {
        if !is_dns_label(&container.name) {
            return Err(format!(
                "spec.{field}: container name {:?} is not a DNS label",
                container.name
            ));
        }
        if !names.insert(container.name.as_str()) {
            return Err(format!(
                "spec.{field}: container name {:?} is used twice",
                container.name
            ));
        }
        validate_container(field, container)?;
    }
    for volume in spec.volumes.iter().flatten() {
        let api_reference = [
            ("secret", volume.secret.is_some()),
            ("configMap", volume.config_map.is_some()),
            ("projected", volume.projected.is_some()),
            (
                "persistentVolumeClaim",
                volume.persistent_volume_claim.is_some(),
            ),
            ("ephemeral", volume.ephemeral.is_some()),
        ];
        if let Some((kind, _)) = api_reference.iter().find(|(_, used)| *used) {
            return Err(format!(
                "spec.volumes[{}]: a {kind} volume references API objects, which static pods may not",
                volume.name
            ));
        }
        if volume.host_path.is_none() && volume.empty_dir.is_none() {
            return Err(format!(
                "spec.volumes[{}]: only hostPath and emptyDir volumes are supported by the process runtime",
                volume.name
            ));
        }
    }
    Ok(())
}

fn validate_container(field: &str, container: &Container) -> Result<(), String> {
    let at = format!("spec.{field}[{}]", container.name);
    if container.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(format!(
            "{at}.envFrom references API objects, which static pods may not"
        ));
    }
    for env in container.env.iter().flatten() {
        if env.value_from.is_some() {
            return Err(format!(
                "{at}.env[{}].valueFrom is not supported by boot's agent; give the value directly",
                env.name
            ));
        }
    }
    for mount in container.volume_mounts.iter().flatten() {
        if !mount.mount_path.starts_with('/') {
            return Err(format!(
                "{at}.volumeMounts[{}].mountPath must be absolute",
                mount.name
            ));
        }
    }
    Ok(())
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
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
        assert_eq!(pod.full_name, "static-busybox-node1");
        assert_eq!(pod.namespace, "default");
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
    fn rejects_oversized_files() {
        let big = vec![b' '; MAX_MANIFEST_BYTES as usize + 1];
        assert!(matches!(
            StaticPod::parse(Path::new("/m/big"), &big, "n"),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
