//! The checks of the API server's `ValidatePodCreate` that matter to a static pod agent, and
//! `PreventStaticPodAPIReferences` (pure). Everything that later becomes a path or a name is
//! checked here: names (DNS-1123), volume names, `subPath`, `mountPath`, `hostPath.path`, user
//! and group IDs; [`super::manifest`] then builds the validated types from the checked values.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use crate::runtime::names::{self, ContainerName, VolumeName};

/// The checks of `ValidatePodCreate` that matter to the agent, and `PreventStaticPodAPIReferences`.
pub fn validate(pod: &Pod) -> Result<(), String> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if !names::is_dns_subdomain(name) {
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
        if let Err(e) = ContainerName::new(container.name.as_str()) {
            return Err(format!("spec.{field}[].name: {e}"));
        }
        if !names.insert(container.name.as_str()) {
            return Err(format!(
                "spec.{field}: container name {:?} is used twice",
                container.name
            ));
        }
        validate_container(field, container, spec)?;
    }
    let mut volumes = BTreeSet::new();
    for volume in spec.volumes.iter().flatten() {
        if let Err(e) = VolumeName::new(volume.name.as_str()) {
            return Err(format!("spec.volumes[].name: {e}"));
        }
        if !volumes.insert(volume.name.as_str()) {
            return Err(format!(
                "spec.volumes[{}]: the volume name is used twice",
                volume.name
            ));
        }
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
        if let Some(host) = &volume.host_path {
            if !host.path.starts_with('/') || names::has_backsteps(&host.path) {
                return Err(format!(
                    "spec.volumes[{}].hostPath.path {:?} must be an absolute path without '..'",
                    volume.name, host.path
                ));
            }
        }
    }
    validate_security_context(spec)?;
    Ok(())
}

/// Negative user and group IDs are refused, as `ValidatePodSecurityContext` does.
fn validate_security_context(spec: &PodSpec) -> Result<(), String> {
    let mut ids = Vec::new();
    if let Some(sc) = &spec.security_context {
        ids.push(("spec.securityContext.runAsUser", sc.run_as_user));
        ids.push(("spec.securityContext.runAsGroup", sc.run_as_group));
        ids.push(("spec.securityContext.fsGroup", sc.fs_group));
        for group in sc.supplemental_groups.iter().flatten() {
            ids.push(("spec.securityContext.supplementalGroups", Some(*group)));
        }
    }
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for container in containers {
        if let Some(sc) = &container.security_context {
            ids.push(("securityContext.runAsUser", sc.run_as_user));
            ids.push(("securityContext.runAsGroup", sc.run_as_group));
        }
    }
    for (field, id) in ids {
        if let Some(id) = id.filter(|id| !(0..=i64::from(u32::MAX - 1)).contains(id)) {
            return Err(format!(
                "{field}: {id} is not a valid user or group ID (0 to 4294967294)"
            ));
        }
    }
    Ok(())
}

fn validate_container(field: &str, container: &Container, spec: &PodSpec) -> Result<(), String> {
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
        let at = format!("{at}.volumeMounts[{}]", mount.name);
        if !mount.mount_path.starts_with('/') || names::has_backsteps(&mount.mount_path) {
            return Err(format!(
                "{at}.mountPath {:?} must be an absolute path without '..'",
                mount.mount_path
            ));
        }
        let known = spec.volumes.iter().flatten().any(|v| v.name == mount.name);
        if !known {
            return Err(format!("{at}.name names no volume of the pod"));
        }
        if let Some(sub) = mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if let Err(rule) = names::check_sub_path(sub) {
                return Err(format!("{at}.subPath {sub:?} {rule}"));
            }
        }
        if mount
            .sub_path_expr
            .as_deref()
            .is_some_and(|s| !s.is_empty())
        {
            return Err(format!("{at}.subPathExpr is not supported by boot's agent"));
        }
    }
    Ok(())
}
