//! The container's seccomp filter for the processes `boot oci-shim` starts in a container: its
//! init (`create`) and the processes `exec` runs in it, as runc applies the profile to both. The
//! shim installs the filter itself, from a workload executor that runs in the process after it
//! joined the container (namespaces, cgroup, user, capabilities, no_new_privs) and just before
//! `execve`, for two reasons: libcontainer 0.7's tenant builder rebuilds an exec'd process's
//! `linux` section from namespaces and cgroups only and drops `linux.seccomp` (exec'd processes
//! would run unfiltered); and libcontainer compiles the profile with libseccomp in every
//! container's init, where boot loads the program the agent compiled once ([`seccomp_bpf`]).
//!
//! Without no_new_privs, installing a filter needs `CAP_SYS_ADMIN`, which the container's
//! capabilities normally lack: as runc does (it loads the filter before dropping capabilities
//! when `noNewPrivileges` is off), the process is created with `CAP_SYS_ADMIN` and `CAP_SETPCAP`
//! added, installs the filter, then drops to exactly the container's capabilities. The default
//! profile allows `capset` and `prctl`, which that drop uses.
//!
//! Runs in the shim and in the container's processes; touches no host path.

use libcontainer::oci_spec::runtime::{Capability, LinuxCapabilities, LinuxSeccomp, Process, Spec};
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

use super::seccomp_bpf;

/// The filter to install.
#[derive(Clone)]
pub enum Filter {
    /// A program the agent compiled (`seccomp.bpf` in the container's directory).
    Program(Vec<u8>),
    /// A profile to compile here (a container created without a program).
    Profile(LinuxSeccomp),
}

/// Installs the container's seccomp filter (and drops the capabilities raised to install it),
/// then runs the workload as libcontainer's default executor does.
#[derive(Clone)]
pub struct SeccompExecutor {
    filter: Filter,
    /// The container's capabilities, when the process was given more to install the filter.
    restore: Option<LinuxCapabilities>,
}

/// Prepares `process` (the container's own, for its init or with an exec's command set) to
/// install `filter`: the executor that installs it.
pub fn prepare(filter: Filter, process: &mut Process) -> SeccompExecutor {
    // No capabilities in the process: libcontainer keeps the shim's, CAP_SYS_ADMIN included.
    let restore = match (process.no_new_privileges(), process.capabilities().clone()) {
        (Some(true), _) | (_, None) => None,
        (_, Some(container)) => {
            process.set_capabilities(Some(raised(&container)));
            Some(container)
        }
    };
    SeccompExecutor { filter, restore }
}

/// The seccomp profile of a container's spec, if it has one.
pub fn profile(spec: &Spec) -> Option<&LinuxSeccomp> {
    spec.linux().as_ref()?.seccomp().as_ref()
}

/// `caps` with `CAP_SYS_ADMIN` (to install a filter without no_new_privs) and `CAP_SETPCAP` (to
/// drop the bounding set afterwards) in the bounding, effective and permitted sets.
fn raised(caps: &LinuxCapabilities) -> LinuxCapabilities {
    let extra = [Capability::SysAdmin, Capability::Setpcap];
    let with_extra = |set: &Option<libcontainer::oci_spec::runtime::Capabilities>| {
        let mut set = set.clone().unwrap_or_default();
        set.extend(extra);
        Some(set)
    };
    let mut out = caps.clone();
    out.set_bounding(with_extra(caps.bounding()))
        .set_effective(with_extra(caps.effective()))
        .set_permitted(with_extra(caps.permitted()));
    out
}

impl Executor for SeccompExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        match &self.filter {
            Filter::Program(program) => seccomp_bpf::load(program).map_err(ExecutorError::Other)?,
            // A notify fd only comes with SCMP_ACT_NOTIFY rules, which boot's profiles never have.
            Filter::Profile(profile) => {
                libcontainer::seccomp::initialize_seccomp(profile).map_err(|e| {
                    ExecutorError::Other(format!("cannot load the seccomp profile: {e}"))
                })?;
            }
        }
        if let Some(caps) = &self.restore {
            let syscall = libcontainer::syscall::syscall::create_syscall();
            libcontainer::capabilities::drop_privileges(caps, syscall.as_ref()).map_err(|e| {
                ExecutorError::Other(format!("cannot drop to the container's capabilities: {e}"))
            })?;
        }
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seccomp: bool) -> Spec {
        let mut linux = serde_json::json!({});
        if seccomp {
            linux["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"});
        }
        serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "linux": linux})).unwrap()
    }

    fn process(no_new_privs: Option<bool>) -> Process {
        let caps = ["CAP_CHOWN", "CAP_KILL"];
        let mut process: Process = serde_json::from_value(serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["cat"],
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        }))
        .unwrap();
        process.set_no_new_privileges(no_new_privs);
        process
    }

    fn filter() -> Filter {
        Filter::Profile(profile(&spec(true)).unwrap().clone())
    }

    #[test]
    fn the_profile_comes_from_the_spec() {
        assert!(profile(&spec(false)).is_none());
        assert!(profile(&spec(true)).is_some());
    }

    #[test]
    fn with_no_new_privs_the_capabilities_stay_the_containers() {
        let mut p = process(Some(true));
        let before = p.clone();
        let executor = prepare(filter(), &mut p);
        assert!(executor.restore.is_none());
        assert_eq!(p, before);
    }

    #[test]
    fn without_no_new_privs_sys_admin_is_lent_and_given_back() {
        for nnp in [None, Some(false)] {
            let mut p = process(nnp);
            let container = p.capabilities().clone().unwrap();
            let executor = prepare(filter(), &mut p);
            assert_eq!(executor.restore.as_ref(), Some(&container));
            let lent = p.capabilities().clone().unwrap();
            for set in [lent.bounding(), lent.effective(), lent.permitted()] {
                let set = set.as_ref().unwrap();
                let expected = [
                    Capability::Chown,
                    Capability::Kill,
                    Capability::SysAdmin,
                    Capability::Setpcap,
                ];
                assert_eq!(set, &expected.into_iter().collect());
            }
            assert_eq!(lent.inheritable(), container.inheritable());
            assert_eq!(lent.ambient(), container.ambient());
        }
    }
}
