//! Automatic certificate renewal also runs beside the agent of `boot init --agent=foreground`
//! (not only beside `boot agent`): with leaves valid for four minutes and a renewal window of
//! 230 s, the foreground init renews them and records it in `/var/lib/boot/certificates.json`.
//! Runs the stand-in components (tests/common/cluster.rs), so it needs no real binaries.

use crate::cluster;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{have_etcd, Cluster, BOOT, IGNORE};

/// Stops the foreground init (SIGTERM, as Ctrl-C would) before the cluster is reset.
struct Foreground(std::process::Child);

impl Drop for Foreground {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn foreground_init_renews_certificates_automatically() {
    if !have_etcd() {
        return;
    }
    let cluster = Cluster::new("", "2m0s");
    cluster.short_lived_certificates("4m0s", "230s");
    let config = cluster.dir.path().join("config.yaml");
    let log = std::fs::File::create(cluster.dir.path().join("init.log")).unwrap();
    let child = Command::new(BOOT)
        .args(["init", "--agent=foreground", IGNORE, "--root"])
        .arg(cluster.root())
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut foreground = Foreground(child);

    let state_file = cluster.root().join("var/lib/boot/certificates.json");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let state: Option<serde_json::Value> = std::fs::read(&state_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(state) = state {
            if state["renewed"].as_array().is_some_and(|r| r.len() >= 11) {
                assert!(state["lastError"].is_null(), "{state}");
                break;
            }
        }
        let output = || std::fs::read_to_string(cluster.dir.path().join("init.log")).unwrap();
        assert!(
            foreground.0.try_wait().unwrap().is_none(),
            "the foreground init ended: {}",
            output()
        );
        assert!(
            Instant::now() < deadline,
            "no automatic renewal beside the foreground agent: {:?}\n{}",
            std::fs::read_to_string(&state_file),
            output()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let output = std::fs::read_to_string(cluster.dir.path().join("init.log")).unwrap();
    assert!(
        output.contains("[certs] renewed certificate apiserver"),
        "{output}"
    );
}
