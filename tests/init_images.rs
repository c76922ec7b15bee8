//! `boot init` from images, end to end (root): a local registry (Debian's `docker-registry` on a
//! free loopback port) holds the four control-plane images under the names and tags kubeadm uses
//! for the configured version (`boot images list`), built by the test: etcd holds Debian's
//! `/usr/bin/etcd`, the three components the stand-in binary, or with `BOOT_K8S_BIN` the real
//! v1.36.2 binaries; each image carries the shared libraries `ldd` lists for its binary. `boot
//! init` with `runtime: oci`, `imageRepository` at the registry and an empty `binDirs` pulls
//! them and brings the control plane up in containers (kubectl works against the real API
//! server). A user pod on the test's own pod network (bridge, range, `hostPort`) joins it. Then
//! `boot reset` leaves nothing: no mount under the root, overlay, cgroup, netns, veth, IPAM
//! allocation, CNI cache entry or iptables rule.
//!
//! Guards reset the root, delete the test's bridge and unmount what is left, even on failure.

#[path = "common/cluster.rs"]
mod cluster;
#[path = "common/images_support.rs"]
mod images;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use boot::agent::status::{AgentStatus, ContainerState};
use boot::host::HostRoot;
use boot::runtime::network::{cleanup, NetworkSettings};
use cluster::{have_etcd, ports, real_components, require, standin_exe, IGNORE};
use images::{busybox_layer, push, write_layout, write_layout_with_config, Layer, Registry};

const NODE: &str = "node-images";
const COMPONENTS: [&str; 3] = [
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
];

struct Tools {
    registry: PathBuf,
    skopeo: PathBuf,
    busybox: PathBuf,
}

fn prerequisites() -> Option<Tools> {
    if !require::root("overlay mounts, namespaces, cgroups, veths") || !have_etcd() {
        return None;
    }
    for tool in ["ldd", "ip", "iptables-save"] {
        require::tool(tool)?;
    }
    for plugin in ["bridge", "host-local", "portmap", "loopback"] {
        require::file(&format!("/usr/lib/cni/{plugin}"))?;
    }
    Some(Tools {
        registry: require::tool("docker-registry")?,
        skopeo: require::tool("skopeo")?,
        busybox: require::file("/bin/busybox")?,
    })
}

#[test]
fn init_runs_the_standin_control_plane_from_images_and_reset_leaves_nothing() {
    let Some(tools) = prerequisites() else { return };
    let standin = standin_exe::standin_exe().to_path_buf();
    let binaries = COMPONENTS.map(|c| (c, standin.clone()));
    init_from_images(&tools, "v1.36.2", &binaries, None);
}

#[test]
fn init_runs_the_real_control_plane_from_images_and_reset_leaves_nothing() {
    let Some(tools) = prerequisites() else { return };
    let Some(dir) = real_components() else { return };
    let Some(kubectl) = require::tool("kubectl") else {
        return;
    };
    let binaries = COMPONENTS.map(|c| (c, dir.join(c)));
    init_from_images(&tools, "v1.36.2", &binaries, Some(&kubectl));
}

fn init_from_images(
    tools: &Tools,
    version: &str,
    binaries: &[(&str, PathBuf)],
    kubectl: Option<&Path>,
) {
    let registry = Registry::start(&tools.registry);
    let dir = tempfile::tempdir().unwrap();
    let test = TestCluster::new(dir.path(), &registry, version, Mode::Oci);
    let _guard = Guard {
        test: &test,
        network: test.network(),
    };

    // The images, under kubeadm's names and tags for this configuration.
    let wanted = test.boot(&["images", "list"]);
    assert!(wanted.status.success(), "{}", images::text(&wanted));
    let wanted: Vec<String> = String::from_utf8_lossy(&wanted.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(wanted.len(), 4, "{wanted:?}");
    for image in &wanted {
        let component = component_of(image);
        let binary = match component {
            "etcd" => PathBuf::from("/usr/bin/etcd"),
            other => binaries
                .iter()
                .find(|(c, _)| *c == other)
                .unwrap()
                .1
                .clone(),
        };
        push_binary_image(tools, &registry, image, component, &binary);
    }
    push_web_image(tools, &registry);

    let init = test.boot(&["init"]);
    assert!(init.status.success(), "{}", images::text(&init));
    let init_out = String::from_utf8_lossy(&init.stdout);
    for image in &wanted {
        assert!(
            init_out.contains(&format!("[preflight] Image {image} ready")),
            "{init_out}"
        );
    }

    // Every control-plane pod runs from its image, in namespaces of its own.
    let status = test.status().expect("boot status answers");
    assert_eq!(status.runtime, "oci");
    let mut uids = Vec::new();
    for image in &wanted {
        let name = format!("{}-{NODE}", component_of(image));
        let pod = status.pods.iter().find(|p| p.name == name).expect(&name);
        let container = &pod.containers[0];
        assert_eq!(container.image.as_deref(), Some(image.as_str()), "{name}");
        let repository = image.rsplit_once(':').unwrap().0;
        let image_id = container.image_id.as_deref().unwrap_or_default();
        assert!(
            image_id.starts_with(&format!("{repository}@sha256:")),
            "{name}: {image_id}"
        );
        let ContainerState::Running { pid, .. } = container.state else {
            panic!("{name} is not running: {:?}", container.state);
        };
        for ns in ["mnt", "pid"] {
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
            let ours = std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            assert_ne!(theirs, ours, "{name} shares the host's {ns} namespace");
        }
        uids.push(pod.uid.clone());
    }
    if let Some(kubectl) = kubectl {
        test.kubectl_until(kubectl, &["get", "--raw", "/readyz"], |out| out == "ok");
        test.kubectl_until(
            kubectl,
            &["get", "pods", "-n", "kube-system", "-o", "name"],
            |out| {
                wanted
                    .iter()
                    .all(|image| out.contains(&format!("pod/{}-{NODE}", component_of(image))))
            },
        );
    }

    // A pod on the test's pod network, with a hostPort: a veth, an IPAM allocation, a CNI cache
    // entry and iptables rules for reset to remove.
    std::fs::write(
        test.root.join("etc/kubernetes/manifests/web.yaml"),
        test.web_pod(&registry),
    )
    .unwrap();
    let (web_uid, ip) = test.wait_for("the web pod serving on its pod IP", |s| {
        let pod = s.pods.iter().find(|p| p.name == format!("web-{NODE}"))?;
        let ip: IpAddr = pod.pod_ip.as_deref()?.parse().ok()?;
        (pod.ready && images::http::get((ip, 80).into(), "/").is_some_and(|a| a.body == "web\n"))
            .then(|| (pod.uid.clone(), ip))
    });
    uids.push(web_uid);
    let network = test.network();
    let attachments = cleanup::attachments(&network);
    assert_eq!(attachments.len(), 1, "one attachment for the web pod");
    assert_eq!(cleanup::bridge_ports(&test.bridge).len(), 1, "one veth");
    assert!(!ipam_allocations(&test).is_empty(), "{ip} is allocated");
    assert!(
        !nat_rules_of(&test.network_name).is_empty(),
        "bridge and portmap add rules"
    );

    // web.yaml is the test's own file: reset leaves it (and so its directory), as kubeadm leaves
    // what it did not write, and says so; removing it and resetting again finishes.
    let reset = test.boot(&["reset", "--force"]);
    let first = images::text(&reset);
    assert!(
        reset.status.success() || first.contains("manifests still exists"),
        "{first}"
    );
    std::fs::remove_file(test.root.join("etc/kubernetes/manifests/web.yaml")).unwrap();
    let reset = test.boot(&["reset", "--force"]);
    assert!(reset.status.success(), "{}", images::text(&reset));
    assert_eq!(test.leftovers(&uids), Vec::<String>::new());
    // The bridge is the test's CNI configuration's, which reset leaves as kubeadm does (the
    // guard deletes it); everything of the pod on it must be gone.
    let left: Vec<String> = cleanup::leftovers(&network, &attachments)
        .into_iter()
        .filter(|l| !l.starts_with(&format!("the bridge {} ", test.bridge)))
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

/// Benchmark, not a test (`cargo test --test init_images -- --ignored --nocapture bench`; set
/// `BOOT_BENCH_EXE=target/release/boot` to time a release build, `BOOT_K8S_BIN` for the real
/// components): `boot init` with the images already in the store against the same init with the
/// process runtime, alternating, on fresh roots; then the agent's RSS with the four control-plane
/// pods in containers and as processes. Prints medians and ratios; asserts only that init works.
#[test]
#[ignore]
fn bench_init_from_images_against_the_process_runtime() {
    // BOOT_BENCH_ROUNDS: more rounds steady the medians on a noisy machine.
    let rounds: usize = std::env::var("BOOT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|r| *r > 0)
        .unwrap_or(5);
    let Some(tools) = prerequisites() else { return };
    let (version, binaries): (&str, Vec<(&str, PathBuf)>) = match require::k8s_binaries_if_given() {
        Some(dir) => (
            "v1.36.2",
            COMPONENTS.iter().map(|c| (*c, dir.join(c))).collect(),
        ),
        None => {
            let standin = standin_exe::standin_exe().to_path_buf();
            (
                "v1.36.2",
                COMPONENTS.iter().map(|c| (*c, standin.clone())).collect(),
            )
        }
    };
    let exe = std::env::var_os("BOOT_BENCH_EXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(cluster::BOOT));
    let registry = Registry::start(&tools.registry);
    let bins = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/usr/bin/etcd", bins.path().join("etcd")).unwrap();
    for (name, binary) in &binaries {
        std::os::unix::fs::symlink(binary, bins.path().join(name)).unwrap();
    }
    let mut pushed = false;
    let mut times: [Vec<Duration>; 2] = [Vec::new(), Vec::new()];
    let mut rss = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, mode) in [Mode::Oci, Mode::Process(bins.path())]
            .into_iter()
            .enumerate()
        {
            let dir = tempfile::tempdir().unwrap();
            let mut test = TestCluster::new(dir.path(), &registry, version, mode);
            test.exe = exe.clone();
            let _guard = Guard {
                test: &test,
                network: test.network(),
            };
            if mode == Mode::Oci {
                if !pushed {
                    let list = test.boot(&["images", "list"]);
                    for image in String::from_utf8_lossy(&list.stdout).lines() {
                        let component = component_of(image);
                        let binary = match component {
                            "etcd" => PathBuf::from("/usr/bin/etcd"),
                            other => binaries
                                .iter()
                                .find(|(c, _)| *c == other)
                                .unwrap()
                                .1
                                .clone(),
                        };
                        push_binary_image(&tools, &registry, image, component, &binary);
                    }
                    pushed = true;
                }
                let pull = test.boot(&["images", "pull"]);
                assert!(pull.status.success(), "{}", images::text(&pull));
            }
            let started = Instant::now();
            let init = test.boot(&["init"]);
            times[i].push(started.elapsed());
            assert!(init.status.success(), "{}", images::text(&init));
            let agent = test.wait_for("the four pods ready", |s| {
                (s.pods.len() == 4 && s.pods.iter().all(|p| p.ready)).then_some(s.agent_pid)
            });
            rss[i].push(peak_rss_kib(agent, Duration::from_secs(5)));
            let reset = test.boot(&["reset", "--force"]);
            assert!(reset.status.success(), "{}", images::text(&reset));
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (oci, process) = (median(&mut times[0]), median(&mut times[1]));
    eprintln!(
        "boot init ({version}, {}): images in the store (oci) {oci:.2?}, host binaries (process) \
         {process:.2?}, median of {rounds} alternating rounds; oci / process = {:.2}",
        exe.display(),
        oci.as_secs_f64() / process.as_secs_f64()
    );
    eprintln!(
        "agent RSS with the four pods ready (KiB, per round): oci {:?}, process {:?}",
        rss[0], rss[1]
    );
    eprintln!(
        "init per round (sorted): oci {:.2?}, process {:.2?}",
        times[0], times[1]
    );
}

/// The largest `VmRSS` of `pid` in KiB, sampled every 100 ms over `window`.
fn peak_rss_kib(pid: u32, window: Duration) -> u64 {
    let rss = || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let end = Instant::now() + window;
    let mut peak = rss();
    while Instant::now() < end {
        // Sampling a measurement, not waiting for a condition.
        std::thread::sleep(Duration::from_millis(100));
        peak = peak.max(rss());
    }
    peak
}

/// The component an image reference names: `…/kube-apiserver:v1.34.2` → `kube-apiserver`.
fn component_of(image: &str) -> &str {
    let name = image.rsplit_once(':').unwrap().0;
    name.rsplit('/').next().unwrap()
}

/// An image laid out as upstream's: the binary in `/usr/local/bin` (its Entrypoint, as kubeadm's
/// manifests give `command`), and the shared libraries it needs at the paths `ldd` names.
fn push_binary_image(tools: &Tools, registry: &Registry, image: &str, name: &str, binary: &Path) {
    let mut files = vec![(format!("usr/local/bin/{name}"), binary.to_path_buf())];
    for lib in shared_libraries(binary) {
        let path = lib.to_string_lossy().trim_start_matches('/').to_string();
        files.push((path, lib));
    }
    let mut layer = Layer::new();
    let mut dirs = BTreeSet::new();
    for (path, _) in &files {
        let parents = Path::new(path).ancestors().skip(1);
        dirs.extend(
            parents
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf),
        );
    }
    for dir in &dirs {
        layer = layer.dir(&format!("{}/", dir.display()), 0o755);
    }
    for (path, source) in &files {
        layer = layer.file(path, 0o755, &std::fs::read(source).unwrap());
    }
    let layout = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "Entrypoint": [format!("/usr/local/bin/{name}")],
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    });
    write_layout_with_config(layout.path(), "v1", &[layer.tar()], config);
    let (repository, tag) = image.rsplit_once(':').unwrap();
    let path = repository
        .strip_prefix(&format!("{}/", registry.host()))
        .unwrap();
    push(
        &tools.skopeo,
        layout.path(),
        "v1",
        &registry.host(),
        &format!("{path}:{tag}"),
    );
}

/// What `ldd` lists for `binary`: nothing for a static one.
fn shared_libraries(binary: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(binary).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().find(|w| w.starts_with('/')))
        .map(PathBuf::from)
        .collect()
}

/// busybox `httpd` serving `web\n` on port 80.
fn push_web_image(tools: &Tools, registry: &Registry) {
    let layout = tempfile::tempdir().unwrap();
    let site = Layer::new()
        .dir("www/", 0o755)
        .file("www/index.html", 0o644, b"web\n")
        .tar();
    write_layout(
        layout.path(),
        "1",
        &[busybox_layer(&tools.busybox), site],
        &["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"],
    );
    push(
        &tools.skopeo,
        layout.path(),
        "1",
        &registry.host(),
        "test/web:1",
    );
}

/// How a [`TestCluster`] runs its components.
#[derive(Clone, Copy, PartialEq)]
enum Mode<'a> {
    /// From the images, with nothing in `binDirs`.
    Oci,
    /// The process runtime, with the binaries in this directory.
    Process(&'a Path),
}

/// A temporary root, its configuration (free ports, the test's network) and the test's names.
struct TestCluster {
    exe: PathBuf,
    dir: PathBuf,
    root: PathBuf,
    bridge: String,
    network_name: String,
    ipam_dir: PathBuf,
    host_port: u16,
}

impl TestCluster {
    fn new(dir: &Path, registry: &Registry, version: &str, mode: Mode) -> TestCluster {
        let root = dir.join("root");
        let empty_bin = dir.join("no-binaries");
        std::fs::create_dir_all(&empty_bin).unwrap();
        let (runtime, bin_dir) = match mode {
            Mode::Oci => ("oci", empty_bin.as_path()),
            Mode::Process(bin) => ("process", bin),
        };
        let ports = ports::free_ports(8);
        let [api, client, peer, metrics, kcm, scheduler, status, host_port] = ports[..] else {
            unreachable!()
        };
        // Names of the test's own: the two tests run in parallel, beside other tests' networks.
        let unique = format!("{:x}{}", std::process::id() % 0x1000, &version[3..5]);
        let bridge = format!("bi{unique}");
        let network_name = format!("init-images-{unique}");
        let subnet = format!(
            "10.232.{}.0/24",
            (std::process::id() % 120) * 2 + u32::from(version == "v1.36.2")
        );
        let ipam_dir = root.join("var/lib/test-ipam");
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0", "name": network_name,
            "plugins": [
                {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                          "dataDir": ipam_dir}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
            ]
        });
        let conf_dir = root.join("etc/cni/net.d");
        std::fs::create_dir_all(&conf_dir).unwrap();
        std::fs::write(conf_dir.join("10-test.conflist"), conflist.to_string()).unwrap();
        let config = format!(
            r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: 127.0.0.1
  bindPort: {api}
nodeRegistration:
  name: {NODE}
timeouts:
  controlPlaneComponentHealthCheck: 3m0s
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: {version}
imageRepository: {registry}/k8s
encryptionAlgorithm: ECDSA-P256
etcd:
  local:
    extraArgs:
    - {{name: listen-client-urls, value: "https://127.0.0.1:{client}"}}
    - {{name: advertise-client-urls, value: "https://127.0.0.1:{client}"}}
    - {{name: listen-peer-urls, value: "https://127.0.0.1:{peer}"}}
    - {{name: initial-advertise-peer-urls, value: "https://127.0.0.1:{peer}"}}
    - {{name: initial-cluster, value: "{NODE}=https://127.0.0.1:{peer}"}}
    - {{name: listen-metrics-urls, value: "http://127.0.0.1:{metrics}"}}
controllerManager:
  extraArgs:
  - {{name: secure-port, value: "{kcm}"}}
scheduler:
  extraArgs:
  - {{name: secure-port, value: "{scheduler}"}}
---
apiVersion: boot/v1alpha1
kind: BootConfiguration
runtime: {runtime}
# With oci nothing on the host: every component comes from its image.
binDirs: [{bin_dir}]
# The etcd image holds Debian's etcd 3.4 under kubeadm's etcd tag: render for the binary.
etcdVersion: 3.4.23
agent:
  statusAddress: 127.0.0.1:{status}
  backoff: {{initial: 200ms, max: 1s}}
"#,
            registry = registry.host(),
            bin_dir = bin_dir.display(),
        );
        std::fs::write(dir.join("config.yaml"), config).unwrap();
        TestCluster {
            exe: PathBuf::from(cluster::BOOT),
            dir: dir.to_path_buf(),
            root,
            bridge,
            network_name,
            ipam_dir,
            host_port,
        }
    }

    fn boot(&self, args: &[&str]) -> Output {
        let mut command = Command::new(&self.exe);
        command
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .stdin(Stdio::null());
        if matches!(args.first(), Some(&"init") | Some(&"images")) {
            command.arg("--config").arg(self.dir.join("config.yaml"));
        }
        if args.first() == Some(&"init") {
            command.arg(IGNORE);
        }
        command.output().unwrap()
    }

    fn status(&self) -> Option<AgentStatus> {
        serde_json::from_slice(&self.boot(&["status", "-o", "json"]).stdout).ok()
    }

    fn wait_for<T>(&self, what: &str, mut check: impl FnMut(&AgentStatus) -> Option<T>) -> T {
        let last = std::cell::RefCell::new(None);
        cluster::poll_until(
            Duration::from_secs(90),
            Duration::from_millis(200), // each poll runs `boot status`
            || {
                let status = self.status()?;
                let found = check(&status);
                *last.borrow_mut() = Some(status);
                found
            },
            || {
                format!(
                    "timed out waiting for {what}; last status: {:#?}",
                    last.borrow()
                )
            },
        )
    }

    fn kubectl_until(&self, kubectl: &Path, args: &[&str], done: impl Fn(&str) -> bool) {
        let last = std::cell::RefCell::new(String::new());
        cluster::poll_until(
            Duration::from_secs(120),
            Duration::from_millis(500),
            || {
                let out = Command::new(kubectl)
                    .arg("--kubeconfig")
                    .arg(self.root.join("etc/kubernetes/admin.conf"))
                    .args(["--request-timeout", "10s"])
                    .args(args)
                    .output()
                    .unwrap();
                *last.borrow_mut() = images::text(&out);
                let stdout = String::from_utf8_lossy(&out.stdout);
                (out.status.success() && done(stdout.trim())).then_some(())
            },
            || format!("kubectl {}: {}", args.join(" "), last.borrow()),
        )
    }

    fn web_pod(&self, registry: &Registry) -> String {
        format!(
            "apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: default}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: {}/test/web:1
    ports: [{{containerPort: 80, hostPort: {}}}]
    readinessProbe:
      httpGet: {{path: /, port: 80}}
      periodSeconds: 1
",
            registry.host(),
            self.host_port
        )
    }

    /// The root's network settings with the test's bridge (reset reads the same conf dir).
    fn network(&self) -> NetworkSettings {
        let mut network = NetworkSettings::for_root(&HostRoot::under(&self.root).unwrap());
        network.default_network.bridge = self.bridge.clone();
        network
    }

    /// Whatever the pods with `uids` could have left on the host.
    fn leftovers(&self, uids: &[String]) -> Vec<String> {
        let mut left: Vec<String> = mounts_under(&self.root)
            .into_iter()
            .map(|m| format!("mount {}", m.display()))
            .collect();
        left.extend(
            overlays_of(&self.root)
                .into_iter()
                .map(|m| format!("overlay {m}")),
        );
        left.extend(
            cleanup::bridge_ports(&self.bridge)
                .into_iter()
                .map(|v| format!("veth {v}")),
        );
        left.extend(
            ipam_allocations(self)
                .into_iter()
                .map(|f| format!("IPAM allocation {}", f.display())),
        );
        left.extend(
            nat_rules_of(&self.network_name)
                .into_iter()
                .map(|r| format!("iptables {r}")),
        );
        for dir in [
            "run/boot/netns",
            "run/boot/oci",
            "var/lib/boot/oci",
            "var/lib/boot/cni",
        ] {
            if self.root.join(dir).exists() {
                left.push(format!("directory {dir}"));
            }
        }
        let hierarchies = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten();
        for hierarchy in hierarchies.map(|e| e.path()) {
            for uid in uids {
                let cgroup = hierarchy.join("boot").join(format!("pod{uid}"));
                if cgroup.exists() {
                    left.push(format!("cgroup {}", cgroup.display()));
                }
            }
        }
        left
    }
}

/// Resets the root (when the test did not get there), deletes the test's bridge and unmounts
/// whatever is left under the root.
struct Guard<'a> {
    test: &'a TestCluster,
    network: NetworkSettings,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if self.test.root.join("var/lib/boot").exists() {
            let _ = self.test.boot(&["reset", "--force"]);
        }
        let _ = cleanup::teardown(&self.network);
        if Path::new("/sys/class/net").join(&self.test.bridge).exists() {
            let _ = Command::new("ip")
                .args(["link", "delete", &self.test.bridge])
                .status();
        }
        let mut mounts = mounts_under(&self.test.root);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for mount in mounts {
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn mountinfo() -> String {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default()
}

/// Mount points at or below `dir`.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    mountinfo()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Overlay mounts anywhere whose layers or upper directory are under `root`.
fn overlays_of(root: &Path) -> Vec<String> {
    let root = root.display().to_string();
    mountinfo()
        .lines()
        .filter(|l| l.contains(" - overlay ") && l.contains(&root))
        .map(str::to_string)
        .collect()
}

/// host-local's allocation files (one per IP) in the test's network directory.
fn ipam_allocations(test: &TestCluster) -> Vec<PathBuf> {
    std::fs::read_dir(test.ipam_dir.join(&test.network_name))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<IpAddr>().is_ok())
        })
        .collect()
}

/// nat rules whose comment names the network (bridge's masquerade, portmap's DNAT).
fn nat_rules_of(network: &str) -> Vec<String> {
    let out = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(network))
        .map(str::to_string)
        .collect()
}
