//! Benchmark, not a test (ignored; `tests/bench/containers.sh` runs it): how long the OCI runtime
//! takes from a container's spec to its process running, against `runc run -d` and `crun run -d`
//! of the very same bundle (the `config.json` boot generated, on an overlay of the same layers).
//! Prints medians and the ratio; needs root, `/bin/busybox`, and runc/crun when installed.

#[path = "common/oci_support.rs"]
mod oci_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use boot::runtime::names::{Namespace, PodName, PodUid};
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
    wait_for("the workload to run", Duration::from_secs(10), || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
}

fn runtime_binary(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// An external runtime's container, deleted and unmounted even when the benchmark fails.
struct External<'a> {
    binary: &'a Path,
    state: PathBuf,
    id: String,
    dirs: ContainerDirs,
}

impl Drop for External<'_> {
    fn drop(&mut self) {
        let _ = Command::new(self.binary)
            .arg("--root")
            .arg(&self.state)
            .args(["delete", "-f", &self.id])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = rootfs::remove(&self.dirs);
    }
}

/// `<runtime> run -d` of `config` on an overlay of `layers`, timed until the workload runs.
fn time_external(
    binary: &Path,
    work: &Path,
    layers: &[PathBuf],
    config: &serde_json::Value,
    i: u32,
) -> Result<Duration, String> {
    let name = binary.file_name().unwrap().to_string_lossy().to_string();
    let id = format!("bench-{name}-{i}");
    let external = External {
        binary,
        state: work.join(format!("{name}-state")),
        dirs: ContainerDirs::new(work.join(&id)),
        id: id.clone(),
    };
    let dirs = &external.dirs;
    let mut config = config.clone();
    config["root"]["path"] = dirs.rootfs().display().to_string().into();
    // Debian's crun 1.8 knows runtime-spec 1.0 only; nothing in the bundle is newer.
    config["ociVersion"] = "1.0.2".into();
    config["linux"]["cgroupsPath"] = format!("/boot-bench/{id}").into();
    let started = Instant::now();
    rootfs::mount_overlay(dirs, layers).unwrap();
    std::fs::write(dirs.config(), serde_json::to_vec(&config).unwrap()).unwrap();
    let pid_file = dirs.dir.join("pid");
    let errors = dirs.dir.join("stderr");
    // The container inherits stdout and stderr: a file and /dev/null, never a pipe we would
    // wait on.
    let status = Command::new(binary)
        .arg("--root")
        .arg(&external.state)
        .args(["run", "-d", "--pid-file"])
        .arg(&pid_file)
        .arg("--bundle")
        .arg(&dirs.dir)
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&errors).unwrap())
        .status()
        .unwrap();
    if !status.success() {
        let why = std::fs::read_to_string(&errors).unwrap_or_default();
        return Err(format!("{name} run failed: {}", why.trim()));
    }
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_running(pid);
    Ok(started.elapsed())
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
    let (pod_uid, namespace, full_name) = (
        PodUid::new(uid).unwrap(),
        Namespace::new("default").unwrap(),
        PodName::new("bench-node1").unwrap(),
    );
    let pod = PodRef {
        uid: &pod_uid,
        namespace: &namespace,
        full_name: &full_name,
        spec: &spec,
    };
    let sandbox = runtime.create_sandbox(pod).unwrap();
    // Removes the sandbox and the cgroup parents even when the benchmark fails.
    struct Cleanup<'a>(
        &'a boot::runtime::oci::OciRuntime,
        boot::runtime::Sandbox,
        String,
    );
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            self.0.remove_sandbox(&self.1);
            remove_cgroup_parent("boot-bench");
            remove_cgroup_parent(&self.2);
        }
    }
    let _cleanup = Cleanup(&runtime, sandbox.clone(), cgroup_parent(&root));
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
        let samples: Result<Vec<Duration>, String> = (0..RUNS)
            .map(|i| time_external(&binary, &work, &layers, &config, i))
            .collect();
        let theirs = match samples {
            Ok(samples) => median(samples),
            Err(why) => {
                println!("{name}: cannot run here: {why}");
                continue;
            }
        };
        println!(
            "{name} run -d (same bundle): median {theirs:?}; boot / {name} = {:.2}",
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
    }
}
