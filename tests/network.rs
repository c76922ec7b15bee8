//! Pod networking with the real CNI plugins (Debian's containernetworking-plugins in
//! /usr/lib/cni) under the in-process agent: a pod without hostNetwork gets an IP in boot's
//! default range and its server answers the node on the pod IP (its readiness probe goes there
//! too); hostPort through portmap on a loopback address; DEL on removal leaves no veth, IPAM file,
//! iptables chain or cache entry; a conflist in the conf dir wins over the default; a broken
//! plugin's CNI error shows in the pod's status; reset's teardown leaves nothing.
//!
//! Every test has its own bridge, network name and /24, so the tests run in parallel; a guard
//! deletes the test's attachments, chains and bridge even when the test fails. Traffic goes only
//! to the pods' addresses on the test's bridge and to 127.0.0.1.

#[path = "common/agent_support.rs"]
mod agent_support;
#[path = "common/http.rs"]
mod http;
#[path = "common/require.rs"]
mod require;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::*;
use boot::runtime::network::NetworkSettings;
use boot::runtime::network::{cleanup, iptables};
use ipnet::Ipv4Net;

const T: Duration = Duration::from_secs(30);

/// `boot reset` removes portmap's shared chains when no pod uses them: it must not run while
/// another test's portmap ADD is between creating them and adding its own chain.
static PORTMAP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The agent of one test and its network. Fields drop in order: the network guard first, while
/// the cache in the agent's temporary root and the pods' namespaces still exist, then the agent
/// (its pods killed, their namespaces and root removed).
struct NetTest {
    guard: NetworkGuard,
    agent: TestAgent,
}

/// Deletes what the test's network may have left: cached attachments (DEL), leaked chains, the
/// bridge, whatever happened in the test.
struct NetworkGuard {
    settings: NetworkSettings,
}

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        let (_, failed) = cleanup::teardown(&self.settings);
        for failure in failed {
            eprintln!("network guard: {failure}");
        }
        let bridge = &self.settings.default_network.bridge;
        if Path::new("/sys/class/net").join(bridge).exists() {
            // Still in use (a failed DEL): the link goes anyway, with its veths.
            let _ = Command::new("ip").args(["link", "delete", bridge]).status();
        }
    }
}

/// Root, iptables and the plugins this module uses; `None` (skipped, or failing in CI) without.
fn prerequisites() -> Option<()> {
    if !require::root("network namespaces, veths, iptables") {
        return None;
    }
    require::tool("iptables")?;
    for plugin in ["bridge", "host-local", "portmap", "loopback"] {
        require::file(&format!("/usr/lib/cni/{plugin}"))?;
    }
    require::tool("busybox")?;
    Some(())
}

/// A network of its own for test number `index`: name, bridge and a /24 from 10.200+index.x.0.
fn start(index: u8, configure: impl FnOnce(&mut NetworkSettings)) -> NetTest {
    let pid = std::process::id();
    let tag = format!("{:x}{index}", pid % 0x10000);
    let mut captured = None;
    let agent = TestAgent::new(|options| {
        let mut settings = NetworkSettings::for_root(&options.root);
        settings.default_network.name = format!("boot-test-{tag}");
        settings.default_network.bridge = format!("bt{tag}");
        settings.default_network.subnet =
            Ipv4Net::new([10, 200 + index, (pid % 250) as u8, 0].into(), 24).unwrap();
        configure(&mut settings);
        captured = Some(settings.clone());
        options.pod_network = Some(settings);
    });
    NetTest {
        agent,
        guard: NetworkGuard {
            settings: captured.unwrap(),
        },
    }
}

/// A pod serving `dir` with busybox httpd on port 80 of its own network, ready when an HTTP GET
/// (to its pod IP, the agent's default probe host) answers.
fn web_pod(name: &str, dir: &Path, ports_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  containers:\n  - name: web\n    image: busybox\n    command: [busybox, httpd, -f, -p, '80', -h, {dir}]\n    ports:\n    - containerPort: 80\n{ports_extra}    readinessProbe:\n      httpGet: {{path: /index.html, port: 80}}\n      periodSeconds: 1\n",
        dir = dir.display()
    )
}

fn site(agent: &TestAgent, text: &str) -> PathBuf {
    let dir = agent.path("www");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), text).unwrap();
    dir
}

/// `GET /index.html` on `addr`, retried until it answers or the deadline passes; the body.
fn http_get(addr: SocketAddr) -> String {
    wait::poll_until(
        T,
        Duration::from_millis(100),
        || http::get(addr, "/index.html").map(|a| a.body),
        || format!("no HTTP answer from {addr}"),
    )
}

fn nat_chains() -> String {
    let out = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn allocations(settings: &NetworkSettings) -> Vec<String> {
    std::fs::read_dir(settings.default_network.allocations_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<IpAddr>().is_ok())
        .collect()
}

async fn ready_ip(agent: &TestAgent, name: &str) -> IpAddr {
    agent
        .wait_pod(name, T, |p| {
            if p.healthy() {
                p.pod_ip.as_deref().and_then(|ip| ip.parse().ok())
            } else {
                None
            }
        })
        .await
}

/// A free port on 127.0.0.1 and the manifest lines that map the web pod's port 80 to it.
fn loopback_host_port() -> (u16, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    (
        port,
        format!("      hostPort: {port}\n      hostIP: 127.0.0.1\n"),
    )
}

/// Serves `text` from a web pod named `name` (with `ports_extra` under its port) and waits until
/// it is ready; returns its pod IP.
async fn serve(agent: &TestAgent, name: &str, text: &str, ports_extra: &str) -> IpAddr {
    let dir = site(agent, text);
    agent.write_manifest(&format!("{name}.yaml"), &web_pod(name, &dir, ports_extra));
    ready_ip(agent, name).await
}

/// A user's network in the CNI conf dir instead of boot's default: its own name, bridge and
/// /24 (`10.<second>.x.0`), IPAM state in the test's root, `extra` plugins after the bridge.
struct UserNetwork {
    name: String,
    bridge: String,
    subnet: String,
    ipam_dir: PathBuf,
    /// Deletes the user's bridge when the test ends.
    _guard: NetworkGuard,
}

fn user_network(
    test: &NetTest,
    prefix: &str,
    second: u8,
    bridge_extra: serde_json::Value,
    extra: &[serde_json::Value],
) -> UserNetwork {
    let settings = &test.guard.settings;
    let pid = std::process::id();
    let name = format!("{prefix}-net-{:x}", pid % 0x10000);
    let bridge = format!("b{}{:x}", &prefix[..1], pid % 0x10000);
    let subnet = format!("10.{second}.{}.0/24", pid % 250);
    let ipam_dir = test.agent.path(&format!("{prefix}-ipam"));
    let mut bridge_plugin = serde_json::json!({
        "type": "bridge", "bridge": bridge, "isGateway": true,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": ipam_dir}
    });
    for (key, value) in bridge_extra.as_object().into_iter().flatten() {
        bridge_plugin[key] = value.clone();
    }
    let plugins: Vec<serde_json::Value> = std::iter::once(bridge_plugin)
        .chain(extra.iter().cloned())
        .collect();
    let conflist = serde_json::json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins});
    std::fs::create_dir_all(&settings.conf_dir).unwrap();
    std::fs::write(
        settings.conf_dir.join(format!("10-{prefix}.conflist")),
        conflist.to_string(),
    )
    .unwrap();
    let guard = NetworkGuard {
        settings: NetworkSettings {
            default_network: boot::runtime::network::default::DefaultNetwork {
                bridge: bridge.clone(),
                ..settings.default_network.clone()
            },
            ..settings.clone()
        },
    };
    UserNetwork {
        name,
        bridge,
        subnet,
        ipam_dir,
        _guard: guard,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_gets_an_ip_in_the_default_range_and_the_node_reaches_it() {
    let Some(()) = prerequisites() else { return };
    let mut test = start(1, |_| {});
    let settings = test.guard.settings.clone();
    test.agent.start().await;
    // Ready means the readiness probe reached httpd: nothing listens on port 80 of the node.
    let ip = serve(&test.agent, "web", "hello from the pod network", "").await;
    let IpAddr::V4(v4) = ip else {
        panic!("not IPv4: {ip}")
    };
    assert!(
        settings.default_network.subnet.contains(&v4),
        "{ip} is outside {}",
        settings.default_network.subnet
    );
    let answer = http_get(SocketAddr::new(ip, 80));
    assert!(answer.contains("hello from the pod network"), "{answer}");
    let status = test.agent.status();
    let pod = status.pod("web").unwrap();
    assert!(pod.network.contains(&ip.to_string()), "{}", pod.network);
    assert!(pod.network.contains("default bridge"), "{}", pod.network);
    let bridge = &settings.default_network.bridge;
    assert_eq!(
        cleanup::bridge_ports(bridge).len(),
        1,
        "one veth on {bridge}"
    );
    assert_eq!(allocations(&settings), [ip.to_string()]);
    assert!(
        boot::runtime::network::conflist::candidate_files(&settings.conf_dir).is_empty(),
        "boot writes nothing into the CNI conf dir"
    );
    // `boot status` shows the pod IP in its table and as podIP in JSON.
    let table = boot_status(&test.agent, &[]);
    let row = table.lines().find(|l| l.starts_with("web-node1"));
    assert!(row.is_some_and(|r| r.contains(&ip.to_string())), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&boot_status(&test.agent, &["-o", "json"])).unwrap();
    assert_eq!(json["pods"][0]["podIP"], ip.to_string());
}

fn boot_status(agent: &TestAgent, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_boot"))
        .arg("status")
        .args(extra)
        .arg("--root")
        .arg(agent.dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_port_through_portmap_and_del_on_removal_leaves_nothing() {
    let Some(()) = prerequisites() else { return };
    let mut test = start(2, |_| {});
    let settings = test.guard.settings.clone();
    test.agent.start().await;
    let (host_port, ports) = loopback_host_port();
    let portmap = PORTMAP.lock().await;
    let ip = serve(&test.agent, "hp", "reached through the host port", &ports).await;
    drop(portmap);
    let answer = http_get(SocketAddr::from(([127, 0, 0, 1], host_port)));
    assert!(answer.contains("reached through the host port"), "{answer}");

    let attachments = cleanup::attachments(&settings);
    assert_eq!(attachments.len(), 1);
    let masquerade = iptables::chain_name(&attachments[0], "");
    let dnat = iptables::chain_name(&attachments[0], "DN-");
    let rules = nat_chains();
    assert!(rules.contains(&format!("-N {masquerade}")), "{rules}");
    assert!(rules.contains(&format!("-N {dnat}")), "{rules}");

    test.agent.remove_manifest("hp.yaml");
    test.agent
        .wait_for("the pod to go", T, |s| s.pods.is_empty().then_some(()))
        .await;
    let bridge = &settings.default_network.bridge;
    assert_eq!(cleanup::bridge_ports(bridge), Vec::<String>::new());
    assert_eq!(
        allocations(&settings),
        Vec::<String>::new(),
        "{ip} released"
    );
    let rules = nat_chains();
    assert!(!rules.contains(&masquerade), "{rules}");
    assert!(!rules.contains(&dnat), "{rules}");
    assert!(
        cleanup::attachments(&settings).is_empty(),
        "cache entry removed"
    );
    assert!(
        TcpStream::connect_timeout(
            &SocketAddr::from(([127, 0, 0, 1], host_port)),
            Duration::from_millis(500)
        )
        .is_err(),
        "the host port no longer leads anywhere"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflist_in_the_conf_dir_is_used_instead_of_the_default() {
    let Some(()) = prerequisites() else { return };
    let mut test = start(3, |_| {});
    let settings = test.guard.settings.clone();
    let user = user_network(&test, "user", 210, serde_json::json!({}), &[]);
    test.agent.start().await;
    let ip = serve(&test.agent, "user", "user network", "").await;
    let range: ipnet::IpNet = user.subnet.parse().unwrap();
    assert!(
        range.contains(&ip),
        "{ip} is outside the user's {}",
        user.subnet
    );
    let status = test.agent.status();
    let network = &status.pod("user").unwrap().network;
    assert!(network.contains("10-user.conflist"), "{network}");
    assert!(
        !Path::new("/sys/class/net")
            .join(&settings.default_network.bridge)
            .exists(),
        "boot's default bridge is not made"
    );
    assert!(http_get(SocketAddr::new(ip, 80)).contains("user network"));
    assert!(user.ipam_dir.join(&user.name).join(ip.to_string()).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_plugin_error_shows_in_the_pod_status() {
    let Some(()) = prerequisites() else { return };
    let bin = tempfile::tempdir().unwrap();
    let plugin = bin.path().join("broken-net");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"subnet is missing\",\"details\":\"ipam.subnet\"}'\nexit 1\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin_dir = bin.path().to_path_buf();
    let mut test = start(4, |settings| settings.bin_dirs.insert(0, bin_dir));
    let settings = test.guard.settings.clone();
    std::fs::create_dir_all(&settings.conf_dir).unwrap();
    std::fs::write(
        settings.conf_dir.join("00-broken.conflist"),
        r#"{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"broken-net"}]}"#,
    )
    .unwrap();
    test.agent.start().await;
    let dir = site(&test.agent, "never served");
    test.agent
        .write_manifest("broken.yaml", &web_pod("broken", &dir, ""));
    let reason = test
        .agent
        .wait_pod("broken", T, |p| {
            p.reason.clone().filter(|r| r.contains("broken-net"))
        })
        .await;
    assert!(
        reason.contains(
            "pod network: network broken: plugin broken-net ADD failed: error 7 (invalid network config): subnet is missing: ipam.subnet"
        ),
        "{reason}"
    );
    assert!(
        reason.contains("broken-node1"),
        "the pod is named: {reason}"
    );
    let status = test.agent.status();
    assert!(status.pod("broken").unwrap().pod_ip.is_none());
    assert_eq!(
        status.pod("broken").unwrap().pid(),
        None,
        "no container starts without its network"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_keeps_the_network_and_reset_teardown_leaves_nothing() {
    let Some(()) = prerequisites() else { return };
    let mut test = start(5, |_| {});
    let settings = test.guard.settings.clone();
    test.agent.start().await;
    let (_, ports) = loopback_host_port();
    let portmap = PORTMAP.lock().await;
    let ip = serve(&test.agent, "left", "left behind", &ports).await;
    drop(portmap);
    let pid = test.agent.status().pod("left").unwrap().pid();
    // A restarted agent finds the sandbox again: CHECK passes, same IP, same process.
    test.agent.stop().await;
    test.agent.start().await;
    assert_eq!(ready_ip(&test.agent, "left").await, ip);
    assert_eq!(test.agent.status().pod("left").unwrap().pid(), pid);
    assert_eq!(cleanup::attachments(&settings).len(), 1, "no second ADD");
    let network = test.agent.status().pod("left").unwrap().network.clone();
    assert!(network.contains(&ip.to_string()), "{network}");
    // The agent stops; its pod and network stay, as after `boot init` before `boot reset`.
    test.agent.stop().await;
    let before = cleanup::attachments(&settings);
    assert_eq!(before.len(), 1);
    assert!(
        !cleanup::leftovers(&settings, &before).is_empty(),
        "the running pod's network is seen"
    );
    let (done, failed) = cleanup::teardown(&settings);
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        done.iter().any(|l| l.contains("Deleted the bridge")),
        "{done:?}"
    );
    assert_eq!(cleanup::leftovers(&settings, &before), Vec::<String>::new());
}

/// `cargo test --test network -- --ignored --nocapture attach_and_detach_timing`: the time boot's
/// ADD (bridge + host-local, portmap, loopback) and DEL take on the default network, median of 15.
#[test]
#[ignore = "a measurement, not a test"]
fn attach_and_detach_timing() {
    let Some(()) = prerequisites() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = boot::host::HostRoot::under(dir.path()).unwrap();
    let pid = std::process::id();
    let mut settings = NetworkSettings::for_root(&root);
    settings.default_network.name = format!("boot-bench-{:x}", pid % 0x10000);
    settings.default_network.bridge = format!("bb{:x}", pid % 0x10000);
    settings.default_network.subnet =
        Ipv4Net::new([10, 220, (pid % 250) as u8, 0].into(), 24).unwrap();
    let _guard = NetworkGuard {
        settings: settings.clone(),
    };
    let spec: k8s_openapi::api::core::v1::PodSpec =
        serde_json::from_value(serde_json::json!({"containers": [{"name": "c"}]})).unwrap();
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for i in 0..15 {
        let uid = boot::runtime::names::PodUid::new(format!("bench{i}")).unwrap();
        let namespace = boot::runtime::names::Namespace::new("default").unwrap();
        let full_name = boot::runtime::names::PodName::new("bench-node1").unwrap();
        let netns = dir.path().join(format!("netns-{i}"));
        boot::runtime::linux::netns::create(&netns).unwrap();
        let pod = boot::runtime::PodRef {
            uid: &uid,
            namespace: &namespace,
            full_name: &full_name,
            spec: &spec,
        };
        let started = Instant::now();
        let attached = boot::runtime::network::attach(&settings, pod, &netns).unwrap();
        adds.push(started.elapsed());
        let started = Instant::now();
        boot::runtime::network::detach(&settings, &attached).unwrap();
        dels.push(started.elapsed());
        boot::runtime::linux::netns::remove(&netns);
    }
    adds.sort();
    dels.sort();
    eprintln!(
        "ADD median {:?} (min {:?}, max {:?}); DEL median {:?} (min {:?}, max {:?})",
        adds[7], adds[0], adds[14], dels[7], dels[0], dels[14]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_reset_deletes_the_pod_network_of_a_stopped_agent() {
    let Some(()) = prerequisites() else { return };
    let mut test = start(6, |_| {});
    // `boot reset --root` acts only on cgroups under boot's default parent, where `boot agent`
    // makes them.
    test.agent.options.cgroup_parent = "boot".into();
    let settings = test.guard.settings.clone();
    // `boot reset --root` knows boot's default paths only: the pod goes on a conflist's network
    // with a bridge of this test's own, whose attachment the cache carries to reset.
    let user = user_network(
        &test,
        "reset",
        216,
        serde_json::json!({"ipMasq": true}),
        &[serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}})],
    );
    test.agent.start().await;
    let (_, ports) = loopback_host_port();
    let ip = serve(&test.agent, "r", "reset me", &ports).await;
    test.agent.stop().await;
    let before = cleanup::attachments(&settings);
    assert_eq!(before.len(), 1);
    let chains = [
        iptables::chain_name(&before[0], ""),
        iptables::chain_name(&before[0], "DN-"),
    ];

    let portmap = PORTMAP.lock().await;
    let out = Command::new(env!("CARGO_BIN_EXE_boot"))
        .args(["reset", "--force", "--root"])
        .arg(test.agent.dir.path())
        .output()
        .unwrap();
    drop(portmap);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "boot reset failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!(
            "Deleted the pod network attachment {}/{}",
            user.name, before[0].container_id
        )),
        "{stdout}"
    );
    assert!(stdout.contains("pod network checked"), "{stdout}");
    assert_eq!(cleanup::bridge_ports(&user.bridge), Vec::<String>::new());
    assert!(!user.ipam_dir.join(&user.name).join(ip.to_string()).exists());
    let rules = nat_chains();
    for chain in chains {
        assert!(!rules.contains(&chain), "{chain} left:\n{rules}");
    }
}
