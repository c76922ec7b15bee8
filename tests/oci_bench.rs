//! Benchmark, not a test (ignored; `tests/bench/containers.sh` runs it): how long the OCI runtime
//! takes from a container's spec to its process running, against `runc run -d` and `crun run -d`
//! of the very same bundle (the `config.json` boot generated, on an overlay of the same layers).
//! Prints medians and the ratio; needs root, `/bin/busybox`, and runc/crun when installed.

#[path = "common/oci_support.rs"]
mod oci_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use boot::runtime::oci::rootfs::{self, ContainerDirs};
use boot::runtime::{ContainerRequest, PodRef, Runtime};
use oci_support::*;

const RUNS: u32 = 15;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Until `/proc/<pid>/comm` is `sleep`: the workload itself runs, not the runtime's init.
fn wait_running(pid: i32) {
    wait_for(Duration::from_secs(10), "the workload to run", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
}

fn runtime_binary(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// `<runtime> run -d` of `config` on an overlay of `layers`, timed until the workload runs.
fn time_external(
    binary: &Path,
    work: &Path,
    layers: &[PathBuf],
    config: &serde_json::Value,
    i: u32,
) -> Duration {
    let name = binary.file_name().unwrap().to_string_lossy().to_string();
    let id = format!("bench-{name}-{i}");
    let dirs = ContainerDirs::new(work.join(&id));
    let state = work.join(format!("{name}-state"));
    let mut config = config.clone();
    config["root"]["path"] = dirs.rootfs().display().to_string().into();
    config["linux"]["cgroupsPath"] = format!("/boot-bench/{id}").into();
    let started = Instant::now();
    rootfs::mount_overlay(&dirs, layers).unwrap();
    std::fs::write(dirs.config(), serde_json::to_vec(&config).unwrap()).unwrap();
    let pid_file = dirs.dir.join("pid");
    let status = Command::new(binary)
        .arg("--root")
        .arg(&state)
        .args(["run", "-d", "--pid-file"])
        .arg(&pid_file)
        .arg("--bundle")
        .arg(&dirs.dir)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{name} run failed");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_running(pid);
    let elapsed = started.elapsed();
    let _ = Command::new(binary)
        .arg("--root")
        .arg(&state)
        .args(["delete", "-f", &id])
        .status();
    rootfs::remove(&dirs).unwrap();
    elapsed
}

#[test]
#[ignore = "benchmark: run by tests/bench/containers.sh"]
fn spec_to_running_container_against_runc_and_crun() {
    assert!(nix::unistd::geteuid().is_root(), "the benchmark needs root");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let layers = busybox_layers(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let runtime = runtime(&root, &layers);
    let uid = "bench0000000000000000000000000001";
    let spec = pod_spec(&format!(
        "hostNetwork: true\nsecurityContext: {{seccompProfile: {{type: RuntimeDefault}}}}\ncontainers:\n- name: main\n  image: {IMAGE}\n  command: [/bin/sleep, '1000']\n"
    ));
    let pod = PodRef {
        uid,
        namespace: "default",
        full_name: "bench-node1",
        spec: &spec,
    };
    let sandbox = runtime.create_sandbox(pod).unwrap();
    let mut ours = Vec::new();
    let mut config = None;
    for i in 0..RUNS {
        let request = ContainerRequest {
            pod,
            sandbox: &sandbox,
            container: &spec.containers[0],
            restart_count: i,
            log_path: root.join(format!("var/log/pods/bench/main/{i}.log")),
        };
        let started = Instant::now();
        let (handle, _exit) = runtime.start_container(&request).unwrap();
        wait_running(handle.pid);
        ours.push(started.elapsed());
        if config.is_none() {
            let id = handle.container_id.clone().unwrap();
            let path = root
                .join("var/lib/boot/oci/containers")
                .join(id)
                .join("config.json");
            config = Some(
                serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).unwrap()).unwrap(),
            );
        }
        rt.block_on(runtime.stop_container(&handle, Duration::ZERO));
        rt.block_on(runtime.cleanup_container(&handle));
    }
    let config = config.unwrap();
    let ours = median(ours);
    println!("boot (libcontainer via oci-shim): median {ours:?} over {RUNS} runs");
    let work = dir.path().join("external");
    for name in ["runc", "crun"] {
        let Some(binary) = runtime_binary(name) else {
            println!("{name}: not installed");
            continue;
        };
        let samples: Vec<Duration> = (0..RUNS)
            .map(|i| time_external(&binary, &work, &layers, &config, i))
            .collect();
        let theirs = median(samples);
        println!(
            "{name} run -d (same bundle): median {theirs:?}; boot / {name} = {:.2}",
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
    }
    runtime.remove_sandbox(&sandbox);
    remove_cgroup_parent("boot-bench");
    remove_cgroup_parent(&cgroup_parent(&root));
}
