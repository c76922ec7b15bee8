//! `seccompProfile` (pure): which profile applies (the container's, else the pod's, else
//! `Unconfined`, as the kubelet with its default `seccompDefault: false`; reference §8), and
//! containerd's `RuntimeDefault` profile built from `seccomp_default.txt` for the container's
//! capabilities. Privileged containers get no seccomp.

use k8s_openapi::api::core::v1::{PodSpec, SeccompProfile};
use libcontainer::oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

const PROFILE: &str = include_str!("seccomp_default.txt");

/// The namespace flags an unprivileged `clone` must not carry (containerd's default profile).
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// The profile that applies to a container, or why none can.
pub fn profile_for(
    pod: &PodSpec,
    container: &k8s_openapi::api::core::v1::Container,
    privileged: bool,
    capabilities: &[String],
) -> Result<Option<LinuxSeccomp>, String> {
    if privileged {
        return Ok(None);
    }
    let chosen: Option<&SeccompProfile> = container
        .security_context
        .as_ref()
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| {
            pod.security_context
                .as_ref()
                .and_then(|s| s.seccomp_profile.as_ref())
        });
    match chosen.map(|p| p.type_.as_str()) {
        None | Some("Unconfined") => Ok(None),
        Some("RuntimeDefault") => Ok(Some(runtime_default(capabilities))),
        Some("Localhost") => Err(
            "seccompProfile Localhost is not supported; use RuntimeDefault or Unconfined".into(),
        ),
        Some(other) => Err(format!("seccompProfile type {other:?} is not known")),
    }
}

fn allow(names: Vec<String>) -> LinuxSyscall {
    let mut s = LinuxSyscall::default();
    s.set_names(names)
        .set_action(LinuxSeccompAction::ScmpActAllow);
    s
}

fn arg(
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .value(value)
        .op(op);
    let builder = match value_two {
        Some(v) => builder.value_two(v),
        None => builder,
    };
    // Every field is set, so building cannot fail.
    builder.build().unwrap_or_default()
}

/// containerd's `RuntimeDefault` for a container with these (bounding) capabilities.
pub fn runtime_default(capabilities: &[String]) -> LinuxSeccomp {
    let arch_tag = if cfg!(target_arch = "aarch64") {
        "allow-aarch64"
    } else {
        "allow-x86_64"
    };
    let mut allowed: Vec<String> = Vec::new();
    for line in PROFILE.lines().filter(|l| !l.starts_with('#')) {
        let mut words = line.split_whitespace();
        let keep = match words.next() {
            Some("allow") => {
                let mut rest = words.clone().peekable();
                match rest.peek() {
                    Some(cap) if cap.starts_with("CAP_") => {
                        let cap = words.next().unwrap_or_default();
                        capabilities.iter().any(|c| c == cap)
                    }
                    _ => true,
                }
            }
            Some(tag) => tag == arch_tag,
            None => false,
        };
        if keep {
            for name in words {
                if !allowed.iter().any(|a| a == name) {
                    allowed.push(name.to_string());
                }
            }
        }
    }
    let mut syscalls = vec![allow(allowed)];
    // personality(2) only for the personalities containerd allows: PER_LINUX, PER_LINUX32,
    // UNAME26, UNAME26|PER_LINUX32 and the query 0xffffffff.
    for persona in [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff] {
        let mut s = allow(vec!["personality".into()]);
        s.set_args(Some(vec![arg(
            0,
            persona,
            None,
            LinuxSeccompOperator::ScmpCmpEq,
        )]));
        syscalls.push(s);
    }
    if !capabilities.iter().any(|c| c == "CAP_SYS_ADMIN") {
        // clone without namespace flags (argument 0 on every architecture boot builds for) …
        let mut s = allow(vec!["clone".into()]);
        s.set_args(Some(vec![arg(
            0,
            CLONE_NAMESPACE_FLAGS,
            Some(0),
            LinuxSeccompOperator::ScmpCmpMaskedEq,
        )]));
        syscalls.push(s);
        // … and clone3, whose flags seccomp cannot see, fails with ENOSYS so that libc falls
        // back to clone (moby#42681).
        let mut s = LinuxSyscall::default();
        s.set_names(vec!["clone3".into()])
            .set_action(LinuxSeccompAction::ScmpActErrno)
            .set_errno_ret(Some(libc::ENOSYS as u32));
        syscalls.push(s);
    }
    let architectures = if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchArm, Arch::ScmpArchAarch64]
    } else {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    };
    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(LinuxSeccompAction::ScmpActErrno)
        .set_architectures(Some(architectures))
        .set_syscalls(Some(syscalls));
    profile
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::oci::spec::process::DEFAULT_CAPABILITIES;

    fn allowed(profile: &LinuxSeccomp) -> Vec<String> {
        profile.syscalls().as_ref().unwrap()[0].names().clone()
    }

    #[test]
    fn default_profile_allows_the_common_set_and_denies_admin_calls() {
        let caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        let profile = runtime_default(&caps);
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        let names = allowed(&profile);
        for name in ["read", "execve", "openat", "chroot", "ptrace", "arch_prctl"] {
            assert!(names.iter().any(|n| n == name), "{name} allowed");
        }
        for name in [
            "mount",
            "unshare",
            "setns",
            "reboot",
            "bpf",
            "kexec_load",
            "clone",
            "clone3",
        ] {
            assert!(
                !names.iter().any(|n| n == name),
                "{name} not unconditionally allowed"
            );
        }
        let syscalls = profile.syscalls().as_ref().unwrap();
        let clone3 = syscalls.iter().find(|s| s.names() == &["clone3"]).unwrap();
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
        let clone = syscalls.iter().find(|s| s.names() == &["clone"]).unwrap();
        assert_eq!(
            clone.args().as_ref().unwrap()[0].value(),
            CLONE_NAMESPACE_FLAGS
        );
    }

    #[test]
    fn sys_admin_unlocks_mount_and_unconditional_clone() {
        let caps = vec!["CAP_SYS_ADMIN".to_string()];
        let profile = runtime_default(&caps);
        let names = allowed(&profile);
        for name in ["mount", "unshare", "setns", "clone", "clone3"] {
            assert!(
                names.iter().any(|n| n == name),
                "{name} allowed with CAP_SYS_ADMIN"
            );
        }
        assert!(
            !names.iter().any(|n| n == "chroot"),
            "no CAP_SYS_CHROOT here"
        );
        let syscalls = profile.syscalls().as_ref().unwrap();
        assert!(!syscalls.iter().any(|s| s.names() == &["clone3"]));
    }

    #[test]
    fn container_profile_wins_over_the_pods() {
        let pod: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [],
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}
        }))
        .unwrap();
        let plain: k8s_openapi::api::core::v1::Container =
            serde_json::from_value(serde_json::json!({"name": "c"})).unwrap();
        let unconfined: k8s_openapi::api::core::v1::Container =
            serde_json::from_value(serde_json::json!({"name": "c",
                "securityContext": {"seccompProfile": {"type": "Unconfined"}}}))
            .unwrap();
        assert!(profile_for(&pod, &plain, false, &[]).unwrap().is_some());
        assert!(profile_for(&pod, &unconfined, false, &[])
            .unwrap()
            .is_none());
        assert!(
            profile_for(&pod, &plain, true, &[]).unwrap().is_none(),
            "privileged"
        );
        let none = PodSpec::default();
        assert!(profile_for(&none, &plain, false, &[]).unwrap().is_none());
    }
}
