//! The log relay as the agent runs it: the real `boot log-relay` on pipes, on a tiny tmpfs that
//! fills up (the container's writes must never block or fail), without its fd 3, and started by an
//! agent whose binary was removed from disk after it started (an upgrade).

#[path = "common/require.rs"]
mod require;
#[path = "common/wait.rs"]
mod wait;
use wait::wait_for;

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BOOT: &str = env!("CARGO_BIN_EXE_boot");

/// A tmpfs mounted by the test; unmounted (lazily, so a straggler cannot keep it) on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(path).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            path,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some(format!("size={size},mode=0700").as_str()),
        )
        .unwrap();
        Tmpfs {
            path: path.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        nix::mount::mount(
            None::<&str>,
            &self.path,
            None::<&str>,
            nix::mount::MsFlags::MS_REMOUNT,
            Some(format!("size={size}").as_str()),
        )
        .unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A child killed and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `boot log-relay --file log` as the agent does: stdout pipe on fd 0, stderr pipe on fd 3.
fn start_relay(log: &Path) -> (Reaped, fs::File, fs::File) {
    let (out_read, out_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let (err_read, err_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let err_fd = err_read.as_raw_fd();
    let mut command = Command::new(BOOT);
    command
        .args(["log-relay", "--file"])
        .arg(log)
        .stdin(Stdio::from(out_read))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(err_fd, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = Reaped(command.spawn().unwrap());
    drop(err_read);
    (child, fs::File::from(out_write), fs::File::from(err_write))
}

/// Runs `write` on a thread; fails the test if it does not finish within `limit` (a blocked pipe).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    write: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(write());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}: the pipe blocked"))
}

#[test]
fn a_full_log_disk_never_blocks_the_container_and_the_drops_are_reported() {
    if !require::root("mounts a tmpfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tmpfs = Tmpfs::mount(&dir.path().join("logs"), "64k");
    let log = tmpfs.path.join("pod/c/0.log");
    let (relay, stdout, stderr) = start_relay(&log);

    // Far more than the pipe (64 KiB) and the disk (64 KiB) hold: a relay that stopped reading
    // would block these writes, a relay that died would fail them with EPIPE.
    let (stdout, stderr) = within(Duration::from_secs(60), "writing 2 MiB", move || {
        let (mut stdout, mut stderr) = (stdout, stderr);
        let line = [b'x'; 127];
        for i in 0..16_384 {
            let pipe = if i % 4 == 0 { &mut stderr } else { &mut stdout };
            pipe.write_all(&line).expect("the relay stopped reading");
            pipe.write_all(b"\n").expect("the relay stopped reading");
        }
        (stdout, stderr)
    });

    // Room again: the relay retries the file, says what it dropped, and goes on.
    tmpfs.resize("4m");
    let mut stdout = stdout;
    let watched = log.clone();
    wait_for("the drop notice", Duration::from_secs(20), || {
        stdout.write_all(b"after the disk had room\n").unwrap();
        fs::read_to_string(&watched)
            .map(|t| {
                t.contains("[boot log-relay] dropped") && t.contains("after the disk had room")
            })
            .unwrap_or(false)
    });
    drop((stdout, stderr));
    let mut relay = relay;
    let mut status = None;
    wait_for("the relay to exit", Duration::from_secs(10), || {
        status = relay.0.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "the relay failed: {status:?}");

    let text = fs::read_to_string(&log).unwrap();
    let notice = text
        .lines()
        .find(|l| l.contains("[boot log-relay] dropped"))
        .unwrap();
    let count: u64 = notice
        .split("dropped ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(count > 100, "only {count} lines dropped: {notice}");
    assert!(notice.contains("No space left on device"), "{notice}");
}

#[test]
fn the_relay_refuses_to_run_without_its_fd_3_and_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("pod/c/0.log");
    let out = Command::new(BOOT)
        .args(["log-relay", "--file"])
        .arg(&log)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("fd 3"), "{stderr}");
    assert!(
        !log.exists() && !log.parent().unwrap().exists(),
        "it opened the log file"
    );
}

/// The agent's binary is removed from disk after it started (as a package upgrade replaces it):
/// containers started afterwards still get their log relay.
#[test]
fn an_agent_whose_binary_was_replaced_still_starts_log_relays() {
    let Some(sh) = require::tool("sh") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let manifests = root.join("etc/kubernetes/manifests");
    fs::create_dir_all(&manifests).unwrap();
    let exe = dir.path().join("boot-old");
    fs::copy(BOOT, &exe).unwrap();
    let mut agent = Command::new(&exe);
    agent
        .args(["agent", "--runtime", "process", "--status-address", "none"])
        .arg("--stop-pods-on-exit")
        .args(["--node-name", "node1", "--root"])
        .arg(&root)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; the agent gets its own group, killed on drop.
    unsafe {
        agent.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let agent = StoppedAgent(agent.spawn().unwrap());
    let socket = root.join("run/boot/agent.sock");
    wait_for("the agent's socket", Duration::from_secs(20), || {
        socket.exists()
    });
    fs::remove_file(&exe).unwrap();

    let uid = "0d1c2b3a-0000-4000-8000-000000000001";
    fs::write(
        manifests.join("echo.yaml"),
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: echo, namespace: kube-system, uid: {uid}}}\n\
             spec:\n  hostNetwork: true\n  containers:\n  - name: c\n    image: busybox\n    \
             command: [{sh}, -c, 'echo started; exec sleep 60']\n",
            sh = sh.display()
        ),
    )
    .unwrap();
    let log = root.join(format!("var/log/pods/kube-system_echo-node1_{uid}/c/0.log"));
    wait_for("the container's log line", Duration::from_secs(30), || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("stdout F started"))
    });
    drop(agent);
}

/// An agent run with `--stop-pods-on-exit`: SIGTERM on drop, so that it stops its pods, then
/// SIGKILL to its group if it does not exit within the deadline.
struct StoppedAgent(Child);

impl Drop for StoppedAgent {
    fn drop(&mut self) {
        let pid = self.0.id() as i32;
        // SAFETY: plain system calls on our own child (not yet reaped, so the pid is still ours).
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(40);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// A relay whose pipe a stray process still holds outlives its container; reset stops it.
#[test]
fn reset_stops_a_relay_left_writing_under_the_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let log = root.join("var/log/pods/kube-system_echo-node1_0d1c/c/0.log");
    let (relay, stdout, stderr) = start_relay(&log);
    let mut relay = relay;
    let reset = Command::new(BOOT)
        .args(["reset", "--force", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&reset.stdout),
        String::from_utf8_lossy(&reset.stderr)
    );
    assert!(output.contains("Stopped the log relay"), "{output}");
    wait_for("the relay to be stopped", Duration::from_secs(10), || {
        relay.0.try_wait().unwrap().is_some()
    });
    drop((stdout, stderr));
}
