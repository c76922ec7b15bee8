//! `boot oci-shim`: the short-lived helper process that creates containers and runs commands in
//! them with youki's `libcontainer`. libcontainer clones the container's processes from the
//! calling process, which is only safe from a single-threaded one (youki #3011): the agent runs
//! tokio threads, so it execs this helper instead, as containerd runs `runc`.
//!
//! `create` mounts the container's overlay, builds the container from the bundle's `config.json`,
//! starts it and reports `pid <N>` (or `error <why>`) on file descriptor 3, then exits; the
//! container's init, its child until then, passes to the agent, a child subreaper. Its stdout and
//! stderr are the shim's, which the agent connected to the container's log relay.
//!
//! `exec` runs a command in a running container (its namespaces, cgroup, user, capabilities and
//! environment, from the container's own `process`, and its seccomp profile through
//! [`exec_security`]), waits for it up to `--timeout-ms`, kills it then, and exits with its
//! status; output goes to the shim's stdout and stderr.
//!
//! Touches: `<root>/run/boot/oci/state/<id>/` (libcontainer's state), the container's directory.

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::rootfs::{self, ContainerDirs};
use super::seccomp_bpf;
use super::seccomp_executor::{self, Filter, SeccompExecutor};

/// The file descriptor `create` reports on.
pub const REPORT_FD: i32 = 3;
/// The exit code of `exec` when the command timed out (as coreutils' `timeout`).
pub const TIMED_OUT: i32 = 124;
/// The exit code of `exec` when the command could not be run in the container at all; its
/// stderr then starts with [`CANNOT_EXEC_PREFIX`].
pub const CANNOT_EXEC: i32 = 126;
pub const CANNOT_EXEC_PREFIX: &str = "exec in container ";

#[derive(Debug, Clone, clap::Args)]
pub struct ShimArgs {
    #[command(subcommand)]
    pub command: ShimCommand,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ShimCommand {
    /// Mount the rootfs, create and start a container, report its pid on fd 3.
    Create {
        /// libcontainer's state directory.
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        id: String,
        /// The container's directory: `config.json`, `rootfs`, `upper`, `work`.
        #[arg(long)]
        bundle: PathBuf,
        /// The image's layers, bottom first.
        #[arg(long = "layer")]
        layers: Vec<PathBuf>,
    },
    /// Run a command in a running container and exit with its status.
    Exec {
        #[arg(long)]
        state: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(long)]
        timeout_ms: u64,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// Runs the shim; returns the process exit code.
pub fn run(args: ShimArgs) -> i32 {
    match args.command {
        ShimCommand::Create {
            state,
            id,
            bundle,
            layers,
        } => {
            // SAFETY: the agent passes the report pipe's write end as fd 3 and nothing else in this
            // process owns it.
            let mut report = unsafe { File::from(OwnedFd::from_raw_fd(REPORT_FD)) };
            let _ = nix::fcntl::fcntl(
                &report,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            let line = match create(&state, &id, &ContainerDirs::new(bundle), &layers) {
                Ok(pid) => format!("pid {pid}\n"),
                Err(e) => format!("error {}\n", e.replace('\n', " ")),
            };
            match report.write_all(line.as_bytes()) {
                Ok(()) if line.starts_with("pid ") => 0,
                _ => 1,
            }
        }
        ShimCommand::Exec {
            state,
            id,
            timeout_ms,
            command,
        } => match exec(&state, &id, &command, Duration::from_millis(timeout_ms)) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("{CANNOT_EXEC_PREFIX}{id}: {e}");
                CANNOT_EXEC
            }
        },
    }
}

fn create(state: &Path, id: &str, dirs: &ContainerDirs, layers: &[PathBuf]) -> Result<i32, String> {
    rootfs::mount_overlay(dirs, layers)?;
    let result = runtime_bundle(dirs)
        .and_then(|(bundle, seccomp)| build_and_start(state, id, &bundle, seccomp));
    if result.is_err() {
        if let Ok(mut container) = Container::load(state.join(id)) {
            let _ = container.delete(true);
        }
        let _ = rootfs::remove(dirs);
    }
    result
}

/// The bundle libcontainer creates the container from. With a compiled seccomp program next to
/// the spec, that is the spec without its profile (with the capabilities to install it) in
/// [`ContainerDirs::runtime_bundle`], and the executor that installs the program; otherwise the
/// container's own directory, libcontainer compiling any profile itself.
fn runtime_bundle(dirs: &ContainerDirs) -> Result<(PathBuf, Option<SeccompExecutor>), String> {
    let Some(program) = read_program(&dirs.seccomp_program())? else {
        return Ok((dirs.dir.clone(), None));
    };
    let config = dirs.config();
    let mut spec =
        Spec::load(&config).map_err(|e| format!("{}: {}", config.display(), chain(&e)))?;
    let mut process = spec
        .process()
        .clone()
        .ok_or("the container's config.json has no process")?;
    let executor = seccomp_executor::prepare(Filter::Program(program), &mut process);
    spec.set_process(Some(process));
    if let Some(mut linux) = spec.linux().clone() {
        linux.set_seccomp(None);
        spec.set_linux(Some(linux));
    }
    // A relative root is the container directory's, not the runtime bundle's.
    if let Some(mut root) = spec.root().clone() {
        root.set_path(dirs.dir.join(root.path()));
        spec.set_root(Some(root));
    }
    let bundle = dirs.runtime_bundle();
    let json = serde_json::to_vec(&spec).map_err(|e| e.to_string())?;
    crate::host::write_all(&[crate::host::RenderedFile {
        path: bundle.join("config.json"),
        mode: 0o600,
        bytes: json,
    }])
    .map_err(|e| e.to_string())?;
    Ok((bundle, Some(executor)))
}

/// The container's compiled seccomp program, if the agent wrote one.
fn read_program(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut program = Vec::new();
    file.take(seccomp_bpf::MAX_PROGRAM_BYTES + 1)
        .read_to_end(&mut program)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(program))
}

fn build_and_start(
    state: &Path,
    id: &str,
    bundle: &Path,
    seccomp: Option<SeccompExecutor>,
) -> Result<i32, String> {
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(state)
        .and_then(|b| b.validate_id())
        .map_err(|e| format!("container id {id:?}: {e}"))?;
    if let Some(executor) = seccomp {
        builder = builder.with_executor(executor);
    }
    let mut container = builder
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| format!("cannot create the container: {}", chain(&e)))?;
    container
        .start()
        .map_err(|e| format!("cannot start the container: {}", chain(&e)))?;
    container
        .pid()
        .map(|p| p.as_raw())
        .ok_or_else(|| "the container has no pid after start".to_string())
}

/// An error and its sources on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn exec(state: &Path, id: &str, command: &[String], timeout: Duration) -> Result<i32, String> {
    let container = Container::load(state.join(id)).map_err(|e| chain(&e))?;
    // The container's own spec, not the runtime bundle's copy without the seccomp profile.
    let dirs = ContainerDirs::of_bundle(container.bundle());
    let spec = Spec::load(dirs.config()).map_err(|e| chain(&e))?;
    let mut process = spec
        .process()
        .clone()
        .ok_or("the container's config.json has no process")?;
    process
        .set_args(Some(command.to_vec()))
        .set_terminal(Some(false));
    // libcontainer's tenant exec leaves the container's seccomp profile out; this puts it back.
    let filter = match read_program(&dirs.seccomp_program())? {
        Some(program) => Some(Filter::Program(program)),
        None => seccomp_executor::profile(&spec)
            .cloned()
            .map(Filter::Profile),
    };
    let seccomp = filter.map(|f| seccomp_executor::prepare(f, &mut process));
    // The exec'd process is described in a file next to libcontainer's state, removed after.
    let process_file = state
        .join(id)
        .join(format!("exec-{}.json", std::process::id()));
    let json = serde_json::to_vec(&process).map_err(|e| e.to_string())?;
    std::fs::write(&process_file, json).map_err(|e| e.to_string())?;
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(state)
        .map_err(|e| chain(&e))?;
    if let Some(executor) = seccomp {
        builder = builder.with_executor(executor);
    }
    let started = builder
        .as_tenant()
        .with_process(Some(&process_file))
        .with_detach(true)
        .build();
    let _ = std::fs::remove_file(&process_file);
    let pid = started.map_err(|e| chain(&e))?;
    wait_with_deadline(Pid::from_raw(pid.as_raw()), Instant::now() + timeout)
}

/// Waits for the exec'd process (a clone child of ours: `__WALL`), killing it at the deadline.
fn wait_with_deadline(pid: Pid, deadline: Instant) -> Result<i32, String> {
    let flags = WaitPidFlag::__WALL | WaitPidFlag::WNOHANG;
    let mut pause = Duration::from_millis(1);
    loop {
        match waitpid(pid, Some(flags)).map_err(|e| e.to_string())? {
            WaitStatus::Exited(_, code) => return Ok(code),
            WaitStatus::Signaled(_, signal, _) => return Ok(128 + signal as i32),
            _ => {}
        }
        if Instant::now() >= deadline {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
            return Ok(TIMED_OUT);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container_dir(seccomp: bool, program: bool) -> (tempfile::TempDir, ContainerDirs) {
        let dir = tempfile::tempdir().unwrap();
        let dirs = ContainerDirs::new(dir.path().join("c"));
        std::fs::create_dir_all(&dirs.dir).unwrap();
        let caps = ["CAP_CHOWN"];
        let mut spec = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sleep"],
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps}},
            "linux": {},
        });
        if seccomp {
            spec["linux"]["seccomp"] = serde_json::json!({"defaultAction": "SCMP_ACT_ERRNO"});
        }
        std::fs::write(dirs.config(), spec.to_string()).unwrap();
        if program {
            std::fs::write(dirs.seccomp_program(), [0u8; 16]).unwrap();
        }
        (dir, dirs)
    }

    #[test]
    fn without_a_program_libcontainer_runs_the_spec_as_it_is() {
        let (_dir, dirs) = container_dir(true, false);
        let (bundle, executor) = runtime_bundle(&dirs).unwrap();
        assert_eq!(bundle, dirs.dir);
        assert!(executor.is_none());
        assert!(!dirs.runtime_bundle().exists());
    }

    #[test]
    fn with_a_program_libcontainer_runs_the_spec_without_the_profile() {
        let (_dir, dirs) = container_dir(true, true);
        let (bundle, executor) = runtime_bundle(&dirs).unwrap();
        assert_eq!(bundle, dirs.runtime_bundle());
        assert!(executor.is_some());
        let runtime = Spec::load(bundle.join("config.json")).unwrap();
        assert!(seccomp_executor::profile(&runtime).is_none());
        assert_eq!(
            runtime.root().as_ref().unwrap().path(),
            &dirs.rootfs(),
            "the root stays the container directory's"
        );
        let caps = runtime.process().as_ref().unwrap().capabilities().clone();
        let effective = caps.unwrap().effective().clone().unwrap();
        assert!(effective.contains(&libcontainer::oci_spec::runtime::Capability::SysAdmin));
        // The container's own spec is untouched: exec and the record read it.
        let own = Spec::load(dirs.config()).unwrap();
        assert!(seccomp_executor::profile(&own).is_some());
        assert_eq!(ContainerDirs::of_bundle(&bundle), dirs);
    }

    #[test]
    fn an_oversized_program_is_read_no_further_than_the_limit() {
        let (_dir, dirs) = container_dir(true, false);
        let big = vec![0u8; seccomp_bpf::MAX_PROGRAM_BYTES as usize * 2];
        std::fs::write(dirs.seccomp_program(), big).unwrap();
        let program = read_program(&dirs.seccomp_program()).unwrap().unwrap();
        assert_eq!(program.len() as u64, seccomp_bpf::MAX_PROGRAM_BYTES + 1);
        assert!(seccomp_bpf::load(&program).is_err());
    }
}
