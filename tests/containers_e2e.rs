//! The `static-web` example end to end with the OCI runtime: `boot agent --config …` with
//! `runtime: oci` over a temporary root, a local registry (Debian's `docker-registry`) holding a
//! busybox `httpd` image the test builds and pushes with skopeo, a pod network of the test's own
//! (a conflist with its own bridge and range). The pod is pulled and runs from its image, answers
//! an HTTP GET on its pod IP, `boot status` shows the image digest; a tag edit pulls the new
//! image and replaces the pod; removal leaves no mount, overlay, cgroup, netns or veth.
//!
//! Guards stop the agent (which stops its pods), delete the test's network and unmount what is
//! left under the root, even when the test fails.

#[path = "common/images_support.rs"]
mod images;
#[path = "common/require.rs"]
mod require;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use boot::agent::status::{AgentStatus, PodStatus};
use boot::host::HostRoot;
use boot::runtime::network::{cleanup, NetworkSettings};
use images::{busybox_layer, push, write_layout, Layer, Registry};

const NODE: &str = "node1";
const DEADLINE: Duration = Duration::from_secs(60);

struct Tools {
    registry: PathBuf,
    skopeo: PathBuf,
    busybox: PathBuf,
}

fn prerequisites() -> Option<Tools> {
    if !require::root("namespaces, overlay mounts, cgroups, veths") {
        return None;
    }
    require::tool("iptables")?;
    require::tool("ip")?;
    for plugin in ["bridge", "host-local", "portmap", "loopback"] {
        require::file(&format!("/usr/lib/cni/{plugin}"))?;
    }
    Some(Tools {
        registry: require::tool("docker-registry")?,
        skopeo: require::tool("skopeo")?,
        busybox: require::file("/bin/busybox")?,
    })
}

/// `boot agent` in its own process; SIGTERM (it stops its pods: `stopPodsOnExit`), then SIGKILL
/// if it has not exited within the deadline.
struct AgentProcess(Child);

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Deletes the test's network (cached attachments through CNI DEL, then the bridge) and unmounts
/// whatever is still mounted under the root; runs after the agent's guard.
struct HostGuard {
    root: PathBuf,
    network: NetworkSettings,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        let (_, failed) = cleanup::teardown(&self.network);
        for failure in failed {
            eprintln!("network guard: {failure}");
        }
        let bridge = &self.network.default_network.bridge;
        if Path::new("/sys/class/net").join(bridge).exists() {
            let _ = Command::new("ip").args(["link", "delete", bridge]).status();
        }
        let mut mounts = mounts_under(&self.root);
        mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for mount in mounts {
            let _ = nix::mount::umount2(&mount, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points at or below `dir` (from /proc/self/mountinfo).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// An image serving `/www` with busybox httpd on port 80, its command from the image's Cmd.
fn push_web_image(tools: &Tools, registry: &Registry, tag: &str, page: &str) {
    let layout = tempfile::tempdir().unwrap();
    let site = Layer::new()
        .dir("www/", 0o755)
        .file("www/index.html", 0o644, page.as_bytes())
        .tar();
    write_layout(
        layout.path(),
        tag,
        &[busybox_layer(&tools.busybox), site],
        &["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"],
    );
    push(
        &tools.skopeo,
        layout.path(),
        tag,
        &registry.host(),
        &format!("static-web:{tag}"),
    );
}

fn static_web(image: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: static-web
  labels: {{role: myrole}}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: {image}
    ports:
    - {{name: web, containerPort: 80, protocol: TCP}}
"
    )
}

fn boot(root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_boot"))
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn status(root: &Path) -> Option<AgentStatus> {
    let out = boot(root, &["status", "-o", "json"]);
    serde_json::from_slice(&out.stdout).ok()
}

fn pod(status: &AgentStatus) -> Option<&PodStatus> {
    status
        .pods
        .iter()
        .find(|p| p.name == format!("static-web-{NODE}"))
}

/// Polls `boot status` until `check` returns a value or the deadline passes (then panics with
/// the last status).
fn wait_for<T>(root: &Path, what: &str, mut check: impl FnMut(&AgentStatus) -> Option<T>) -> T {
    let last = std::cell::RefCell::new(None);
    images::wait::poll_until(
        DEADLINE,
        Duration::from_millis(100), // each poll runs `boot status`
        || {
            let status = status(root)?;
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

/// The pod, running from `image` with its image digest, and answering `page` on its pod IP.
fn serving(root: &Path, image: &str, page: &str) -> (String, String, IpAddr) {
    let (uid, image_id, ip) = wait_for(root, &format!("static-web running {image}"), |s| {
        let pod = pod(s)?;
        let web = pod.containers.first()?;
        if !pod.ready || web.image.as_deref() != Some(image) {
            return None;
        }
        let ip: IpAddr = pod.pod_ip.as_deref()?.parse().ok()?;
        Some((pod.uid.clone(), web.image_id.clone()?, ip))
    });
    let last = std::cell::RefCell::new(None);
    images::wait::poll_until(
        DEADLINE,
        Duration::from_millis(100),
        || {
            let body = images::http::get((ip, 80).into(), "/").map(|a| a.body);
            let served = (body.as_deref() == Some(page)).then_some(());
            *last.borrow_mut() = body;
            served
        },
        || format!("GET http://{ip}/ answered {:?}", last.borrow()),
    );
    (uid, image_id, ip)
}

#[test]
fn static_web_runs_from_its_image_on_the_pod_network_and_leaves_nothing() {
    let Some(tools) = prerequisites() else { return };
    let registry = Registry::start(&tools.registry);
    push_web_image(&tools, &registry, "1", "static-web v1\n");
    push_web_image(&tools, &registry, "2", "static-web v2\n");

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let host_root = HostRoot::under(&root).unwrap();
    // The test's own network: its bridge, range and IPAM state, as a conflist in the conf dir.
    let pid = std::process::id();
    let bridge = format!("bc{:x}", pid % 0x10000);
    let subnet = format!("10.230.{}.0/24", pid % 250);
    let mut network = NetworkSettings::for_root(&host_root);
    network.default_network.bridge = bridge.clone();
    let conflist = serde_json::json!({
        "cniVersion": "1.0.0", "name": format!("containers-e2e-{pid:x}"),
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": false,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                      "dataDir": root.join("var/lib/test-ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ]
    });
    std::fs::create_dir_all(&network.conf_dir).unwrap();
    std::fs::write(
        network.conf_dir.join("10-test.conflist"),
        conflist.to_string(),
    )
    .unwrap();
    let _host = HostGuard {
        root: root.clone(),
        network,
    };

    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        "apiVersion: boot/v1alpha1\nkind: BootConfiguration\nruntime: oci\nagent:\n  stopPodsOnExit: true\n",
    )
    .unwrap();
    let manifests = root.join("etc/kubelet.d");
    std::fs::create_dir_all(&manifests).unwrap();
    let _agent = AgentProcess(
        Command::new(env!("CARGO_BIN_EXE_boot"))
            .arg("--root")
            .arg(&root)
            .arg("--config")
            .arg(&config)
            .args([
                "agent",
                "--pod-manifest-path=/etc/kubelet.d/",
                "--node-name",
                NODE,
                "--status-address",
                "none",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&root, "the agent", |s| (s.runtime == "oci").then_some(()));

    // The manifest appears: the image is pulled and the pod runs from it on the pod network.
    let image_v1 = format!("{}/static-web:1", registry.host());
    std::fs::write(manifests.join("static-web.yaml"), static_web(&image_v1)).unwrap();
    let started = Instant::now();
    let (uid_v1, image_id_v1, ip_v1) = serving(&root, &image_v1, "static-web v1\n");
    eprintln!("manifest → pulled and serving: {:?}", started.elapsed());
    let repo = format!("{}/static-web@sha256:", registry.host());
    assert!(image_id_v1.starts_with(&repo), "{image_id_v1}");
    let subnet: ipnet::IpNet = subnet.parse().unwrap();
    assert!(subnet.contains(&ip_v1), "{ip_v1} is outside {subnet}");
    let table = boot(&root, &["status"]);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("runtime oci"), "{table}");
    assert!(
        table.contains(&format!("container web: image {image_v1} ({image_id_v1})")),
        "{table}"
    );
    assert_eq!(cleanup::bridge_ports(&bridge).len(), 1, "one veth");

    // A new tag: pulled, and the pod replaced by one running the new image.
    let image_v2 = format!("{}/static-web:2", registry.host());
    std::fs::write(manifests.join("static-web.yaml"), static_web(&image_v2)).unwrap();
    let (uid_v2, image_id_v2, _) = serving(&root, &image_v2, "static-web v2\n");
    assert_ne!(uid_v1, uid_v2, "an edited manifest is a new pod");
    assert_ne!(image_id_v1, image_id_v2);
    assert!(image_id_v2.starts_with(&repo), "{image_id_v2}");
    assert_eq!(
        cleanup::bridge_ports(&bridge).len(),
        1,
        "the old veth is gone"
    );

    // Removal: nothing of either pod is left.
    std::fs::remove_file(manifests.join("static-web.yaml")).unwrap();
    let removed = Instant::now();
    wait_for(&root, "the pod to go", |s| pod(s).is_none().then_some(()));
    eprintln!("manifest removed → pod gone: {:?}", removed.elapsed());
    // The containers' cleanup (overlay unmount, directories) may end just after the pod left
    // the status.
    images::wait::poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            leftovers(&root, &bridge, &[&uid_v1, &uid_v2])
                .is_empty()
                .then_some(())
        },
        || {
            format!(
                "left behind: {:?}",
                leftovers(&root, &bridge, &[&uid_v1, &uid_v2])
            )
        },
    );
    eprintln!("manifest removed → nothing left: {:?}", removed.elapsed());
    assert_eq!(
        leftovers(&root, &bridge, &[&uid_v1, &uid_v2]),
        Vec::<String>::new()
    );
}

/// What the pods with `uids` could leave: mounts (overlays, namespace files, /dev/shm) under the
/// root, veths on the bridge, netns files, container directories, cgroups.
fn leftovers(root: &Path, bridge: &str, uids: &[&str]) -> Vec<String> {
    let mut left: Vec<String> = mounts_under(root)
        .iter()
        .map(|m| format!("mount {}", m.display()))
        .collect();
    left.extend(
        cleanup::bridge_ports(bridge)
            .into_iter()
            .map(|v| format!("veth {v}")),
    );
    for dir in [
        "run/boot/netns",
        "var/lib/boot/oci/containers",
        "run/boot/oci/pods",
    ] {
        let entries = std::fs::read_dir(root.join(dir))
            .into_iter()
            .flatten()
            .flatten();
        left.extend(entries.map(|e| format!("{}", e.path().display())));
    }
    let hierarchies = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten();
    for hierarchy in hierarchies.map(|e| e.path()) {
        for uid in uids {
            for parent in [hierarchy.join("boot"), hierarchy.clone()] {
                let cgroup = parent.join(format!("pod{uid}"));
                if cgroup.exists() {
                    left.push(format!("cgroup {}", cgroup.display()));
                }
            }
        }
    }
    left
}
