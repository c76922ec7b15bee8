//! The pod fields a runtime does not apply, found in a pod spec so that the agent shows them as
//! warnings instead of dropping them silently. One walker; each runtime names its own fields
//! (the process runtime: [`crate::runtime::process::security::UNSUPPORTED`]; the OCI runtime:
//! `crate::runtime::oci`'s). Pure.

use k8s_openapi::api::core::v1::{PodSpec, SecurityContext};

/// A field of the pod (`spec.…`) a runtime may not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodField {
    FsGroup,
    FsGroupChangePolicy,
    SeLinuxOptions,
    SeccompProfile,
    AppArmorProfile,
    Sysctls,
    WindowsOptions,
    ShareProcessNamespace,
    HostAliases,
}

/// A field of a container's `securityContext` a runtime may not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerField {
    Capabilities,
    ReadOnlyRootFilesystem,
    SeccompProfile,
    AppArmorProfile,
    SeLinuxOptions,
    ProcMount,
    WindowsOptions,
}

/// What one runtime leaves out.
#[derive(Debug, Clone, Copy)]
pub struct Unsupported {
    pub pod: &'static [PodField],
    pub container: &'static [ContainerField],
}

impl PodField {
    /// The field's path, and whether `spec` sets it.
    fn in_spec(self, spec: &PodSpec) -> (&'static str, bool) {
        let p = spec.security_context.as_ref();
        let context = |name, set: fn(&k8s_openapi::api::core::v1::PodSecurityContext) -> bool| {
            (name, p.is_some_and(set))
        };
        match self {
            PodField::FsGroup => context("spec.securityContext.fsGroup", |p| p.fs_group.is_some()),
            PodField::FsGroupChangePolicy => {
                context("spec.securityContext.fsGroupChangePolicy", |p| {
                    p.fs_group_change_policy.is_some()
                })
            }
            PodField::SeLinuxOptions => context("spec.securityContext.seLinuxOptions", |p| {
                p.se_linux_options.is_some()
            }),
            PodField::SeccompProfile => context("spec.securityContext.seccompProfile", |p| {
                p.seccomp_profile.is_some()
            }),
            PodField::AppArmorProfile => context("spec.securityContext.appArmorProfile", |p| {
                p.app_armor_profile.is_some()
            }),
            PodField::Sysctls => context("spec.securityContext.sysctls", |p| {
                p.sysctls.as_ref().is_some_and(|s| !s.is_empty())
            }),
            PodField::WindowsOptions => context("spec.securityContext.windowsOptions", |p| {
                p.windows_options.is_some()
            }),
            PodField::ShareProcessNamespace => (
                "spec.shareProcessNamespace",
                spec.share_process_namespace == Some(true),
            ),
            PodField::HostAliases => (
                "spec.hostAliases",
                spec.host_aliases.as_ref().is_some_and(|a| !a.is_empty()),
            ),
        }
    }
}

impl ContainerField {
    /// The field's name under `securityContext`, and whether `c` sets it.
    fn in_context(self, c: &SecurityContext) -> (&'static str, bool) {
        match self {
            ContainerField::Capabilities => ("capabilities", c.capabilities.is_some()),
            ContainerField::ReadOnlyRootFilesystem => (
                "readOnlyRootFilesystem",
                c.read_only_root_filesystem == Some(true),
            ),
            ContainerField::SeccompProfile => ("seccompProfile", c.seccomp_profile.is_some()),
            ContainerField::AppArmorProfile => ("appArmorProfile", c.app_armor_profile.is_some()),
            ContainerField::SeLinuxOptions => ("seLinuxOptions", c.se_linux_options.is_some()),
            ContainerField::ProcMount => ("procMount", c.proc_mount.is_some()),
            ContainerField::WindowsOptions => ("windowsOptions", c.windows_options.is_some()),
        }
    }
}

/// The fields of `unsupported` that `spec` sets: the pod's first, then each container's
/// (init containers first) as `spec.containers[<name>].securityContext.<field>`.
pub fn in_use(spec: &PodSpec, unsupported: &Unsupported) -> Vec<String> {
    let mut fields: Vec<String> = unsupported
        .pod
        .iter()
        .map(|f| f.in_spec(spec))
        .filter(|(_, set)| *set)
        .map(|(name, _)| name.to_string())
        .collect();
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers);
    for container in containers {
        let Some(c) = &container.security_context else {
            continue;
        };
        for (name, _) in unsupported
            .container
            .iter()
            .map(|f| f.in_context(c))
            .filter(|(_, set)| *set)
        {
            fields.push(format!(
                "spec.containers[{}].securityContext.{name}",
                container.name
            ));
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOME: Unsupported = Unsupported {
        pod: &[PodField::SeccompProfile, PodField::ShareProcessNamespace],
        container: &[ContainerField::Capabilities, ContainerField::ProcMount],
    };

    #[test]
    fn names_only_the_unsupported_fields_that_are_set() {
        let spec: PodSpec = serde_yaml::from_str(
            "{shareProcessNamespace: true, securityContext: {seccompProfile: {type: RuntimeDefault}, fsGroup: 1}, initContainers: [{name: i, securityContext: {procMount: Default}}], containers: [{name: c, securityContext: {capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true}}]}",
        )
        .unwrap();
        assert_eq!(
            in_use(&spec, &SOME),
            [
                "spec.securityContext.seccompProfile",
                "spec.shareProcessNamespace",
                "spec.containers[i].securityContext.procMount",
                "spec.containers[c].securityContext.capabilities",
            ]
        );
        let plain: PodSpec = serde_yaml::from_str("{containers: [{name: c}]}").unwrap();
        assert!(in_use(&plain, &SOME).is_empty());
    }
}
