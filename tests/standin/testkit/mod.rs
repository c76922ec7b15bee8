//! Helpers for integration tests that run `boot-standin`: a process guard that kills what it
//! started, condition polling with a deadline, free loopback ports, a bin directory with the
//! components' names linked to the stand-in, a test PKI (`pki`) and a small HTTPS client
//! (`https`). Include it with `#[path = "standin/testkit/mod.rs"] mod testkit;`.
#![allow(dead_code)] // each test crate uses a different part

pub mod https;
pub mod pki;
#[path = "../../common/standin_exe.rs"]
mod standin_exe;
pub use standin_exe::standin_exe;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How long any awaited condition may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A started process, killed (and reaped) when dropped.
pub struct Proc {
    pub child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    pub fn start(mut command: Command, dir: &Path, tag: &str) -> Proc {
        let (stdout, stderr) = (
            dir.join(format!("{tag}.stdout")),
            dir.join(format!("{tag}.stderr")),
        );
        command
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap());
        Proc {
            child: command.spawn().unwrap(),
            stdout,
            stderr,
        }
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        wait_for("process exit", DEADLINE, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[path = "../../common/wait.rs"]
mod wait;
#[allow(unused_imports)] // each test crate uses a different part
pub use wait::wait_for;

#[path = "../../common/ports.rs"]
mod ports;
pub use ports::free_port;

/// A bin directory with `name` linked to the stand-in, as the agent's tests set it up.
pub fn standin(dir: &Path, name: &str) -> Command {
    let link = dir.join("bin").join(name);
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    if !link.exists() {
        std::os::unix::fs::symlink(standin_exe(), &link).unwrap();
    }
    let mut command = Command::new(link);
    command
        .env_remove("BOOT_STANDIN_FAULTS")
        .env_remove("BOOT_STANDIN_CONTROL");
    command
}
