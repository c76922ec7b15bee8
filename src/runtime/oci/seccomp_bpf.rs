//! Seccomp profiles compiled to BPF once per agent, not once per container. Compiling
//! containerd's `RuntimeDefault` profile with libseccomp (about 400 syscalls for three
//! architectures) was a third of the CPU a container start cost, and every container of a
//! control-plane pod asks for the same profile. The agent compiles each distinct profile (one per
//! capability set) once with libseccomp — exactly as libcontainer and runc would, so the program
//! is the one they would load — keeps it in a [`FilterCache`], and writes it next to the
//! container's `config.json`; the shim loads it with `seccomp(2)` ([`load`]).
//!
//! Touches: `<root>/var/lib/boot/oci/containers/<id>/seccomp.bpf` (through the caller).

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::sync::{Arc, Mutex};

use libcontainer::oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompOperator,
};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

/// One BPF instruction (`struct sock_filter`): 8 bytes.
const INSTRUCTION: usize = 8;
/// The kernel refuses longer programs (`BPF_MAXINSNS`).
const MAX_INSTRUCTIONS: usize = 4096;
/// The largest program file [`load`] accepts.
pub const MAX_PROGRAM_BYTES: u64 = (INSTRUCTION * MAX_INSTRUCTIONS) as u64;

/// Compiled programs by profile (its JSON), shared by every container start of the agent.
#[derive(Debug, Default)]
pub struct FilterCache {
    programs: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl FilterCache {
    /// The program for `profile`, compiled on first use. Concurrent starts wait for the first
    /// compilation instead of repeating it.
    pub fn get(&self, profile: &LinuxSeccomp) -> Result<Arc<Vec<u8>>, String> {
        let key = serde_json::to_string(profile).map_err(|e| e.to_string())?;
        let mut programs = self.programs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(program) = programs.get(&key) {
            return Ok(program.clone());
        }
        let program = Arc::new(compile(profile)?);
        programs.insert(key, program.clone());
        // libseccomp's working memory (about 1 MiB, freed) would otherwise stay in the calling
        // thread's malloc arena, counted in the agent's RSS.
        #[cfg(target_env = "gnu")]
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
        Ok(program)
    }
}

/// Compiles `profile` as libcontainer's `initialize_seccomp` does (same actions, architectures,
/// rules and `SCMP_FLTATR_CTL_NNP` off), returning the BPF program instead of loading it. Filter
/// flags and notify actions, which boot's profiles never have, are refused: such a profile is
/// left to libcontainer.
pub fn compile(profile: &LinuxSeccomp) -> Result<Vec<u8>, String> {
    let failed = |what: &str, e: libseccomp::error::SeccompError| format!("seccomp {what}: {e}");
    if profile.flags().as_ref().is_some_and(|f| !f.is_empty()) {
        return Err("seccomp filter flags are not precompiled".into());
    }
    let default_action = action(profile.default_action(), profile.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default_action).map_err(|e| failed("filter", e))?;
    for &arch in profile.architectures().iter().flatten() {
        ctx.add_arch(architecture(arch)?)
            .map_err(|e| failed("architecture", e))?;
    }
    ctx.set_ctl_nnp(false).map_err(|e| failed("attribute", e))?;
    for rule in profile.syscalls().iter().flatten() {
        let rule_action = action(rule.action(), rule.errno_ret())?;
        if rule_action == default_action {
            continue;
        }
        let comparisons: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                ScmpArgCompare::new(a.index() as u32, operator(a.op(), a.value_two()), a.value())
            })
            .collect();
        let mut indices: Vec<u32> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| a.index() as u32)
            .collect();
        indices.sort_unstable();
        let repeated_index = indices.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            // A name this libseccomp does not know is a syscall this kernel lacks (libcontainer
            // and runc skip it too).
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            let added = if comparisons.is_empty() {
                ctx.add_rule(rule_action, syscall).map(drop)
            } else if repeated_index {
                // One comparison per argument and rule (seccomp_rule_add(3)), as runc does.
                comparisons.iter().try_for_each(|c| {
                    ctx.add_rule_conditional(rule_action, syscall, std::slice::from_ref(c))
                        .map(drop)
                })
            } else {
                ctx.add_rule_conditional(rule_action, syscall, &comparisons)
                    .map(drop)
            };
            added.map_err(|e| failed(&format!("rule for {name}"), e))?;
        }
    }
    let mut file = memfd()?;
    ctx.export_bpf(&file).map_err(|e| failed("export", e))?;
    let mut program = Vec::new();
    file.rewind()
        .and_then(|()| {
            (&mut file)
                .take(MAX_PROGRAM_BYTES + 1)
                .read_to_end(&mut program)
        })
        .map_err(|e| format!("seccomp export: {e}"))?;
    check(&program)?;
    Ok(program)
}

/// Installs `program` on the calling thread. Without no_new_privs the thread needs
/// `CAP_SYS_ADMIN` (seccomp(2)).
pub fn load(program: &[u8]) -> Result<(), String> {
    check(program)?;
    let filters = program.as_ptr() as *mut libc::sock_filter;
    let fprog = libc::sock_fprog {
        len: (program.len() / INSTRUCTION) as u16,
        filter: filters,
    };
    // SAFETY: `fprog` points at `program`, a whole number of sock_filter records that outlive
    // the call; the kernel copies the program and does not write through the pointer.
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    if result != 0 {
        return Err(format!(
            "cannot load the seccomp filter: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// A program is a non-empty whole number of instructions, at most the kernel's maximum.
fn check(program: &[u8]) -> Result<(), String> {
    let count = program.len() / INSTRUCTION;
    if !program.len().is_multiple_of(INSTRUCTION) || count == 0 || count > MAX_INSTRUCTIONS {
        return Err(format!(
            "a seccomp program of {} bytes is not 1 to {MAX_INSTRUCTIONS} instructions",
            program.len()
        ));
    }
    Ok(())
}

fn memfd() -> Result<std::fs::File, String> {
    let name = c"boot-seccomp";
    nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
        .map(std::fs::File::from)
        .map_err(|e| format!("seccomp export: memfd: {e}"))
}

fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, String> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(
            u16::try_from(errno)
                .map_err(|_| format!("seccomp trace value {errno} out of range"))?,
        ),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err("seccomp notify actions are not precompiled".into())
        }
    })
}

fn operator(op: LinuxSeccompOperator, value_two: Option<u64>) -> ScmpCompareOp {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(value_two.unwrap_or(0)),
    }
}

fn architecture(arch: Arch) -> Result<ScmpArch, String> {
    Ok(match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        other => return Err(format!("seccomp architecture {other:?} is not precompiled")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::oci::spec::process::DEFAULT_CAPABILITIES;
    use crate::runtime::oci::spec::seccomp::runtime_default;

    fn default_profile() -> LinuxSeccomp {
        let caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        runtime_default(&caps)
    }

    #[test]
    fn runtime_default_compiles_to_a_program_the_kernel_takes() {
        let program = compile(&default_profile()).unwrap();
        assert!(program.len().is_multiple_of(INSTRUCTION));
        // Three architectures and some 400 syscalls: hundreds of instructions.
        assert!(program.len() / INSTRUCTION > 300, "{}", program.len());
        // Loading it in a child (fork: the test harness is multi-threaded, but the child only
        // makes raw syscalls) must work, and the filter must deny what the profile denies.
        // SAFETY: the child calls only async-signal-safe functions and _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = unsafe {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    10
                } else if load(&program).is_err() {
                    11
                } else if libc::syscall(libc::SYS_getpid) <= 0 {
                    12
                } else if libc::unshare(libc::CLONE_NEWUTS) == 0 {
                    13
                } else {
                    0
                }
            };
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(
            libc::WEXITSTATUS(status),
            0,
            "10 prctl, 11 load, 12 getpid, 13 unshare"
        );
    }

    #[test]
    fn the_cache_compiles_a_profile_once() {
        let cache = FilterCache::default();
        let first = cache.get(&default_profile()).unwrap();
        let again = cache.get(&default_profile()).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let caps = vec!["CAP_SYS_ADMIN".to_string()];
        let other = cache.get(&runtime_default(&caps)).unwrap();
        assert_ne!(first, other, "another capability set, another program");
    }

    #[test]
    fn programs_are_checked_before_loading() {
        assert!(load(&[]).is_err());
        assert!(load(&[0; 12]).is_err());
        assert!(load(&vec![0; INSTRUCTION * (MAX_INSTRUCTIONS + 1)]).is_err());
    }
}
