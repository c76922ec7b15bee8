//! `securityContext` for the process runtime (pure): the user, group and supplementary groups a
//! container process runs as (the container's fields over the pod's, as the kubelet merges them),
//! `runAsNonRoot` enforced as the kubelet's `verifyRunAsNonRoot` does (a process runtime has no
//! image user: without `runAsUser` the process runs as the agent's user), `no_new_privs` for
//! `allowPrivilegeEscalation: false`, and the list of fields this runtime cannot honour, which the
//! agent shows as warnings instead of dropping them silently.

use k8s_openapi::api::core::v1::{Container, PodSpec};

use crate::runtime::ignored_fields::{ContainerField, PodField, Unsupported};

/// Who a container process runs as, and with which restrictions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// `supplementalGroups`, added to the primary group.
    pub groups: Vec<u32>,
    /// `allowPrivilegeEscalation: false` → `PR_SET_NO_NEW_PRIVS`.
    pub no_new_privs: bool,
}

impl ProcessIdentity {
    /// The identity as the child applies it between fork and exec, prepared before the fork.
    pub fn prepare(&self) -> PreparedIdentity {
        PreparedIdentity {
            // setgroups gets the primary group first, then the supplementary ones.
            groups: self
                .gid
                .into_iter()
                .chain(self.groups.iter().copied())
                .collect(),
            gid: self.gid,
            uid: self.uid,
            no_new_privs: self.no_new_privs,
        }
    }
}

/// A [`ProcessIdentity`] ready for a forked child: nothing left to allocate.
#[derive(Debug, Clone)]
pub struct PreparedIdentity {
    groups: Vec<libc::gid_t>,
    gid: Option<u32>,
    uid: Option<u32>,
    no_new_privs: bool,
}

impl PreparedIdentity {
    /// In the child, after the steps that need root: groups, group, user, then
    /// `PR_SET_NO_NEW_PRIVS`. Only async-signal-safe system calls.
    pub fn apply(&self) -> std::io::Result<()> {
        let check = |r: libc::c_int| {
            if r < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY: plain system calls on data owned by self.
        unsafe {
            if self.uid.is_some() || !self.groups.is_empty() {
                check(libc::setgroups(self.groups.len(), self.groups.as_ptr()))?;
                if let Some(gid) = self.gid {
                    check(libc::setgid(gid))?;
                }
                if let Some(uid) = self.uid {
                    check(libc::setuid(uid))?;
                }
            }
            if self.no_new_privs {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
            }
        }
        Ok(())
    }
}

/// The identity of `container` in `spec`; `agent_uid` is who the process runs as when neither
/// sets `runAsUser`. Refuses `runAsNonRoot: true` with an effective uid 0.
pub fn process_identity(
    spec: &PodSpec,
    container: &Container,
    agent_uid: u32,
) -> Result<ProcessIdentity, String> {
    let c = container.security_context.as_ref();
    let p = spec.security_context.as_ref();
    let id = |v: Option<i64>, field: &str| -> Result<Option<u32>, String> {
        v.map(|v| {
            u32::try_from(v).map_err(|_| format!("securityContext.{field} {v} is not a valid ID"))
        })
        .transpose()
    };
    let uid = id(
        c.and_then(|c| c.run_as_user)
            .or_else(|| p.and_then(|p| p.run_as_user)),
        "runAsUser",
    )?;
    let gid = id(
        c.and_then(|c| c.run_as_group)
            .or_else(|| p.and_then(|p| p.run_as_group)),
        "runAsGroup",
    )?;
    let groups = p
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|g| id(Some(g), "supplementalGroups").map(Option::unwrap_or_default))
        .collect::<Result<Vec<u32>, String>>()?;
    let non_root = c
        .and_then(|c| c.run_as_non_root)
        .or_else(|| p.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    if non_root {
        match uid {
            Some(0) => {
                return Err("its runAsUser 0 breaks the runAsNonRoot policy; hint: set securityContext.runAsUser to a non-zero uid".into())
            }
            None if agent_uid == 0 => {
                return Err("has runAsNonRoot but would run as root (the process runtime runs it as the agent's user when runAsUser is not set); hint: set securityContext.runAsUser".into())
            }
            _ => {}
        }
    }
    let no_new_privs = c.and_then(|c| c.allow_privilege_escalation) == Some(false);
    Ok(ProcessIdentity {
        uid,
        gid,
        groups,
        no_new_privs,
    })
}

/// The fields of the pod that the process runtime does not apply (a host process has the host's
/// root file system, capabilities, seccomp and LSM confinement).
pub const UNSUPPORTED: Unsupported = Unsupported {
    pod: &[
        PodField::FsGroup,
        PodField::FsGroupChangePolicy,
        PodField::SeLinuxOptions,
        PodField::SeccompProfile,
        PodField::AppArmorProfile,
        PodField::Sysctls,
        PodField::WindowsOptions,
        PodField::ShareProcessNamespace,
        PodField::HostAliases,
    ],
    container: &[
        ContainerField::Capabilities,
        ContainerField::ReadOnlyRootFilesystem,
        ContainerField::SeccompProfile,
        ContainerField::AppArmorProfile,
        ContainerField::SeLinuxOptions,
        ContainerField::ProcMount,
        ContainerField::WindowsOptions,
    ],
};

/// The fields of `spec` the process runtime does not apply.
pub fn unsupported_fields(spec: &PodSpec) -> Vec<String> {
    crate::runtime::ignored_fields::in_use(spec, &UNSUPPORTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> PodSpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn container_fields_win_and_run_as_non_root_is_enforced() {
        let spec = pod("{securityContext: {runAsUser: 1000, runAsGroup: 10, supplementalGroups: [5, 6]}, containers: [{name: c, securityContext: {runAsUser: 2000, allowPrivilegeEscalation: false}}]}");
        let id = process_identity(&spec, &spec.containers[0], 0).unwrap();
        assert_eq!(
            id,
            ProcessIdentity {
                uid: Some(2000),
                gid: Some(10),
                groups: vec![5, 6],
                no_new_privs: true
            }
        );
        let root = pod("{securityContext: {runAsNonRoot: true}, containers: [{name: c, securityContext: {runAsUser: 0}}]}");
        let err = process_identity(&root, &root.containers[0], 1000).unwrap_err();
        assert!(err.contains("breaks the runAsNonRoot policy"), "{err}");
        let unset = pod("{containers: [{name: c, securityContext: {runAsNonRoot: true}}]}");
        let err = process_identity(&unset, &unset.containers[0], 0).unwrap_err();
        assert!(err.contains("would run as root"), "{err}");
        assert!(process_identity(&unset, &unset.containers[0], 1000).is_ok());
    }

    #[test]
    fn lists_what_a_host_process_cannot_honour() {
        let spec = pod("{securityContext: {seccompProfile: {type: RuntimeDefault}, runAsUser: 1}, containers: [{name: c, securityContext: {capabilities: {drop: [ALL]}, readOnlyRootFilesystem: true, runAsUser: 2}}]}");
        assert_eq!(
            unsupported_fields(&spec),
            [
                "spec.securityContext.seccompProfile",
                "spec.containers[c].securityContext.capabilities",
                "spec.containers[c].securityContext.readOnlyRootFilesystem"
            ]
        );
        assert!(unsupported_fields(&pod("{containers: [{name: c}]}")).is_empty());
    }
}
