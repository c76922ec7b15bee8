//! Three control-plane nodes on one machine, each in a network namespace of its own (a veth pair
//! to a bridge this test creates, addresses it chooses in 10.231.<n>.0/24) with its own `--root`:
//! `boot init` on the first with `controlPlaneEndpoint` = its own address (a real cluster would put
//! a VIP or a load balancer there), `boot join --control-plane` on the other two. etcd then has
//! three started voting members and every node's API server answers; with the first node's pods
//! stopped the other two keep serving (quorum 2 of 3); `boot reset` of a joined node removes its
//! member and the others stay healthy; reset of all leaves nothing. Bad join data (wrong CA hash,
//! unknown token, wrong certificate key, unreachable endpoint) fails clearly and changes nothing.
//! A join interrupted (SIGINT) after its learner was added removes it and its files; one killed
//! (SIGKILL) leaves the learner, which the node's next join, or its reset, removes.
//!
//! Runs the real components (`BOOT_K8S_BIN`): the stand-in API server has no bootstrap-token
//! authentication. Needs root, `ip`, `etcdctl` and `kubectl`.

#[path = "common/cluster.rs"]
mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cluster::{require, text, walk, BOOT};

/// This host may not forward IPv4 and may have fewer CPUs than kubeadm wants.
const IGNORE: &str =
    "--ignore-preflight-errors=FileContent--proc-sys-net-ipv4-ip_forward,NumCPU,Mem";

/// The bridge and the namespaces; dropping it kills what still runs inside them and deletes them.
struct Network {
    bridge: String,
    namespaces: Vec<String>,
}

impl Network {
    fn new(tag: &str, subnet: u8, nodes: usize) -> Network {
        let bridge = format!("bjbr{tag}");
        let mut network = Network {
            bridge: bridge.clone(),
            namespaces: Vec::new(),
        };
        ip(&["link", "add", &bridge, "type", "bridge"]);
        ip(&["link", "set", &bridge, "up"]);
        for i in 1..=nodes {
            let ns = format!("bj{tag}-{i}");
            let (host_end, node_end) = (format!("bjv{tag}{i}"), format!("bjp{tag}{i}"));
            ip(&["netns", "add", &ns]);
            network.namespaces.push(ns.clone());
            ip(&[
                "link", "add", &host_end, "type", "veth", "peer", "name", &node_end,
            ]);
            ip(&["link", "set", &node_end, "netns", &ns]);
            ip(&["link", "set", &host_end, "master", &bridge, "up"]);
            let address = format!("10.231.{subnet}.{i}/24");
            for args in [
                vec!["link", "set", "lo", "up"],
                vec!["link", "set", &node_end, "name", "eth0"],
                vec!["addr", "add", &address, "dev", "eth0"],
                vec!["link", "set", "eth0", "up"],
                vec!["route", "add", "default", "dev", "eth0"],
            ] {
                let mut full = vec!["-n", ns.as_str()];
                full.extend(args);
                ip(&full);
            }
        }
        network
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            // Whatever a failed test left running in the namespace (the test started it all).
            let pids = Command::new("ip").args(["netns", "pids", ns]).output();
            for pid in pids
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        text(&out)
    );
}

/// One node: its namespace, address, temporary root and configuration; dropping it resets it.
struct Node {
    ns: String,
    name: String,
    address: String,
    dir: tempfile::TempDir,
}

impl Node {
    fn new(ns: &str, i: usize, subnet: u8, components: &Path, endpoint: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        for name in [
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ] {
            std::os::unix::fs::symlink(components.join(name), bin.join(name)).unwrap();
        }
        std::os::unix::fs::symlink("/usr/bin/etcd", bin.join("etcd")).unwrap();
        let name = format!("node-{i}");
        let address = format!("10.231.{subnet}.{i}");
        // The first node's documents; the others read the ClusterConfiguration from the cluster
        // and use only their BootConfiguration and JoinConfiguration.
        let config = format!(
            r#"apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: {address}
nodeRegistration:
  name: {name}
timeouts:
  controlPlaneComponentHealthCheck: 4m
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
controlPlaneEndpoint: {endpoint}
encryptionAlgorithm: ECDSA-P256
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
timeouts:
  discovery: 15s
  controlPlaneComponentHealthCheck: 4m
---
apiVersion: boot/v1alpha1
kind: BootConfiguration
runtime: process
binDirs: [{bin}]
agent:
  backoff: {{initial: 1s, max: 5s}}
"#,
            bin = bin.display(),
        );
        std::fs::write(dir.path().join("config.yaml"), config).unwrap();
        Node {
            ns: ns.to_string(),
            name,
            address,
            dir,
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.yaml")
    }

    /// `ip netns exec NS boot ARGS --root ROOT`.
    fn boot(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, BOOT])
            .args(args)
            .arg("--root")
            .arg(self.root())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `boot join` through `endpoint` with this node's address and name.
    fn join(&self, endpoint: &str, token: &str, hash: &str, key: &str) -> Output {
        self.join_command(endpoint, token, hash, key)
            .output()
            .unwrap()
    }

    /// The same join, started: its output goes to `join.out` beside the root.
    fn start_join(&self, endpoint: &str, token: &str, hash: &str, key: &str) -> Child {
        let out = std::fs::File::create(self.dir.path().join("join.out")).unwrap();
        self.join_command(endpoint, token, hash, key)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap()
    }

    /// Waits for `child` to exit; its status and everything it printed.
    fn finish(&self, mut child: Child, timeout: Duration) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let said = std::fs::read_to_string(self.dir.path().join("join.out")).unwrap();
                return (status, said);
            }
            assert!(
                Instant::now() < deadline,
                "{}: the join did not exit",
                self.name
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the join journal records the learner etcd added.
    fn wait_learner_added(&self, timeout: Duration) {
        let journal = self.root().join("var/lib/boot/join-etcd.json");
        let deadline = Instant::now() + timeout;
        loop {
            let read = std::fs::read(&journal).ok();
            let parsed = read.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            if parsed.is_some_and(|j| !j["member"].is_null()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the join journal never recorded a member: {}",
                self.name,
                std::fs::read_to_string(self.dir.path().join("join.out")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn join_command(&self, endpoint: &str, token: &str, hash: &str, key: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.ns, BOOT])
            .args([
                "join",
                endpoint,
                "--token",
                token,
                "--discovery-token-ca-cert-hash",
                hash,
                "--control-plane",
                "--certificate-key",
                key,
                "--apiserver-advertise-address",
                &self.address,
                "--node-name",
                &self.name,
                "--config",
                self.config().to_str().unwrap(),
                IGNORE,
                "--root",
                self.root().to_str().unwrap(),
            ])
            .stdin(Stdio::null());
        command
    }

    /// A command inside this node's namespace.
    fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.ns, program])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `kubectl` against this node's own API server with its admin.conf.
    fn kubectl(&self, args: &[&str]) -> Output {
        let admin = self.root().join("etc/kubernetes/admin.conf");
        let server = format!("https://{}:6443", self.address);
        let mut full = vec![
            "--kubeconfig",
            admin.to_str().unwrap(),
            "--server",
            &server,
            "--request-timeout",
            "10s",
        ];
        full.extend(args);
        self.exec("kubectl", &full)
    }

    fn readyz(&self) -> bool {
        self.kubectl(&["get", "--raw", "/readyz"]).status.success()
    }

    /// etcd's member list through this node's own member, as JSON.
    fn members(&self) -> Result<serde_json::Value, String> {
        let pki = self.root().join("etc/kubernetes/pki/etcd");
        let endpoint = format!("https://{}:2379", self.address);
        let out = self.exec(
            "etcdctl",
            &[
                "--endpoints",
                &endpoint,
                "--cacert",
                pki.join("ca.crt").to_str().unwrap(),
                "--cert",
                pki.join("healthcheck-client.crt").to_str().unwrap(),
                "--key",
                pki.join("healthcheck-client.key").to_str().unwrap(),
                "--command-timeout=5s",
                "member",
                "list",
                "-w",
                "json",
            ],
        );
        if !out.status.success() {
            return Err(text(&out));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    }

    /// Waits until the member list through this node satisfies `ready`.
    fn wait_members(&self, timeout: Duration, ready: impl Fn(&[Member]) -> bool) -> Vec<Member> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.members().map(|v| members_of(&v));
            if let Ok(members) = &last {
                if ready(members) {
                    return members.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{}: etcd members not as expected: {last:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn wait_readyz(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.readyz() {
            assert!(
                Instant::now() < deadline,
                "{}: the API server does not answer /readyz: {}",
                self.name,
                text(&self.kubectl(&["get", "--raw", "/readyz"]))
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Nothing left under the root, and no process in the namespace.
    fn assert_clean(&self) {
        let left = walk(&self.root());
        assert!(
            left.is_empty(),
            "{}: left under the root: {left:?}",
            self.name
        );
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.ns])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&pids.stdout).trim().is_empty(),
            "{}: processes left in {}: {}",
            self.name,
            self.ns,
            String::from_utf8_lossy(&pids.stdout)
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.boot(&["reset", "--force"]);
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: String,
    learner: bool,
}

fn members_of(list: &serde_json::Value) -> Vec<Member> {
    list["members"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|m| Member {
            name: m["name"].as_str().unwrap_or_default().to_string(),
            learner: m["isLearner"].as_bool().unwrap_or(false),
        })
        .collect()
}

fn voters(members: &[Member], names: &[&str]) -> bool {
    members.len() == names.len()
        && names
            .iter()
            .all(|n| members.iter().any(|m| m.name == *n && !m.learner))
}

/// A token and a certificate key of the right shapes, unique per run.
fn secrets() -> (String, String) {
    let id: String = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
    let secret: String = format!("{:016x}", rand::random::<u64>());
    let key: String = (0..4)
        .map(|_| format!("{:016x}", rand::random::<u64>()))
        .collect();
    (format!("{id}.{secret}"), key)
}

fn ca_hash(init_output: &str) -> String {
    init_output
        .split_whitespace()
        .find(|w| w.starts_with("sha256:") && w.len() == 7 + 64)
        .unwrap_or_else(|| panic!("init printed no CA hash:\n{init_output}"))
        .to_string()
}

fn prerequisites() -> bool {
    require::root("network namespaces")
        && require::tool("ip").is_some()
        && require::tool("etcdctl").is_some()
        && require::tool("kubectl").is_some()
        && require::file("/usr/bin/etcd").is_some()
}

#[test]
fn three_nodes_join_keep_quorum_and_reset_cleanly() {
    if !prerequisites() {
        return;
    }
    // The stand-in API server authenticates client certificates only; discovery and the
    // certificate download need bootstrap-token authentication.
    let Some(dir) = cluster::real_components() else {
        return;
    };
    ha_scenario(&dir);
}

fn ha_scenario(components: &Path) {
    let tag = format!("{:04x}", std::process::id() & 0xffff);
    let subnet = (std::process::id() % 200 + 20) as u8;
    let network = Network::new(&tag, subnet, 3);
    let endpoint = format!("10.231.{subnet}.1:6443");
    let nodes: Vec<Node> = network
        .namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| Node::new(ns, i + 1, subnet, components, &endpoint))
        .collect();
    let (token, key) = secrets();

    let started = Instant::now();
    let init = nodes[0].boot(&[
        "init",
        "--config",
        nodes[0].config().to_str().unwrap(),
        "--upload-certs",
        "--certificate-key",
        &key,
        "--token",
        &token,
        IGNORE,
    ]);
    let init_took = started.elapsed();
    assert!(init.status.success(), "init: {}", text(&init));
    let hash = ca_hash(&text(&init));
    nodes[0].wait_members(Duration::from_secs(30), |m| voters(m, &["node-1"]));

    let unreachable = format!("10.231.{subnet}.250:6443");
    bad_join_data_changes_nothing(&nodes, &endpoint, &unreachable, (&token, &hash, &key));

    interrupted_joins_roll_back(&nodes, &endpoint, (&token, &hash, &key));

    let mut join_took = Vec::new();
    for node in &nodes[1..] {
        let started = Instant::now();
        let out = node.join(&endpoint, &token, &hash, &key);
        join_took.push(started.elapsed());
        assert!(out.status.success(), "{} join: {}", node.name, text(&out));
        let said = text(&out);
        assert!(said.contains("promoted"), "{said}");
        if node.name == "node-2" {
            // node-2's earlier join was killed after its member add.
            assert!(
                said.contains("did not finish") && said.contains("removed etcd member"),
                "the leftover learner is not said to be removed first: {said}"
            );
        }
    }
    eprintln!(
        "NUMBERS: init {:.1}s, join node-2 {:.1}s, join node-3 {:.1}s",
        init_took.as_secs_f64(),
        join_took[0].as_secs_f64(),
        join_took[1].as_secs_f64()
    );
    let all = ["node-1", "node-2", "node-3"];
    for node in &nodes {
        node.wait_members(Duration::from_secs(60), |m| voters(m, &all));
        node.wait_readyz(Duration::from_secs(120));
    }

    // node-1's pods stop (its manifests moved away: the agent stops them); 2 of 3 keep serving.
    let manifests = nodes[0].root().join("etc/kubernetes/manifests");
    let parked = nodes[0].dir.path().join("parked");
    std::fs::rename(&manifests, &parked).unwrap();
    std::fs::create_dir(&manifests).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while nodes[0].readyz() {
        assert!(
            Instant::now() < deadline,
            "node-1 keeps serving without its manifests"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let created = nodes[1].kubectl(&[
        "-n",
        "default",
        "create",
        "configmap",
        "ha-check",
        "--from-literal=k=v",
    ]);
    assert!(
        created.status.success(),
        "write through node-2: {}",
        text(&created)
    );
    let read = nodes[2].kubectl(&[
        "-n",
        "default",
        "get",
        "configmap",
        "ha-check",
        "-o",
        "jsonpath={.data.k}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&read.stdout),
        "v",
        "read through node-3: {}",
        text(&read)
    );
    std::fs::remove_dir(&manifests).unwrap();
    std::fs::rename(&parked, &manifests).unwrap();
    nodes[0].wait_readyz(Duration::from_secs(180));
    nodes[0].wait_members(Duration::from_secs(60), |m| voters(m, &all));

    // A joined node's reset removes its member; the others stay healthy.
    let reset = nodes[2].boot(&["reset", "--force"]);
    assert!(reset.status.success(), "reset node-3: {}", text(&reset));
    assert!(
        text(&reset).contains("removed etcd member"),
        "{}",
        text(&reset)
    );
    nodes[2].assert_clean();
    for node in &nodes[..2] {
        node.wait_members(Duration::from_secs(30), |m| voters(m, &all[..2]));
        node.wait_readyz(Duration::from_secs(60));
    }
    let reset = nodes[1].boot(&["reset", "--force"]);
    assert!(reset.status.success(), "reset node-2: {}", text(&reset));
    nodes[1].assert_clean();
    nodes[0].wait_members(Duration::from_secs(30), |m| voters(m, &all[..1]));
    nodes[0].wait_readyz(Duration::from_secs(60));
    // The last member is never removed; reset just takes the node down.
    let reset = nodes[0].boot(&["reset", "--force"]);
    assert!(reset.status.success(), "reset node-1: {}", text(&reset));
    assert!(text(&reset).contains("last member"), "{}", text(&reset));
    for node in &nodes {
        node.assert_clean();
    }
}

/// Each bad join fails with a message naming the problem, adds no etcd member and writes nothing.
/// `unreachable` is an address on the bridge nothing answers on.
fn bad_join_data_changes_nothing(
    nodes: &[Node],
    endpoint: &str,
    unreachable: &str,
    (token, hash, key): (&str, &str, &str),
) {
    let node = &nodes[1];
    let wrong_hash = format!("sha256:{}", "0".repeat(64));
    let unknown_token = format!("{}.{}", "zzzzzz", &token[7..]);
    let wrong_key = "f".repeat(64);
    let cases: [(&str, &str, &str, &str, &[&str]); 4] = [
        (
            "wrong CA hash",
            endpoint,
            token,
            &wrong_hash,
            &["CA", "sha256"],
        ),
        ("unknown token", endpoint, &unknown_token, hash, &["token"]),
        (
            "wrong certificate key",
            endpoint,
            token,
            hash,
            &["certificate key"],
        ),
        (
            "unreachable endpoint",
            unreachable,
            token,
            hash,
            &[unreachable],
        ),
    ];
    for (case, endpoint, token, hash, words) in cases {
        let key = if case == "wrong certificate key" {
            wrong_key.as_str()
        } else {
            key
        };
        let out = node.join(endpoint, token, hash, key);
        let said = text(&out);
        assert!(!out.status.success(), "{case}: the join succeeded: {said}");
        for word in words {
            assert!(
                said.contains(word),
                "{case}: the message does not name {word:?}: {said}"
            );
        }
        assert!(said.contains("nothing was changed"), "{case}: {said}");
        let left = walk(&node.root());
        assert!(left.is_empty(), "{case}: files written: {left:?}");
        nodes[0].wait_members(Duration::from_secs(10), |m| voters(m, &["node-1"]));
    }
}

/// Joins stopped after their learner was added. SIGINT: the join removes its member and its
/// files and fails saying so. SIGKILL: the learner stays; on node-2 the next join removes it
/// first (checked by the caller), on node-3 `boot reset` does.
fn interrupted_joins_roll_back(
    nodes: &[Node],
    endpoint: &str,
    (token, hash, key): (&str, &str, &str),
) {
    let only_first = |m: &[Member]| voters(m, &["node-1"]);
    let with_learner = |m: &[Member]| m.len() == 2 && m.iter().any(|m| m.learner);

    let node = &nodes[1];
    let join = node.start_join(endpoint, token, hash, key);
    node.wait_learner_added(Duration::from_secs(60));
    signal(&join, nix::sys::signal::Signal::SIGINT);
    let (status, said) = node.finish(join, Duration::from_secs(60));
    assert!(!status.success(), "the interrupted join succeeded: {said}");
    for words in [
        "join interrupted",
        "removed etcd member",
        "files this join wrote",
    ] {
        assert!(
            said.contains(words),
            "the interrupted join does not say {words:?}: {said}"
        );
    }
    nodes[0].wait_members(Duration::from_secs(10), only_first);
    node.assert_clean();

    // etcd takes one learner at a time: node-3's goes (reset) before node-2's is left.
    for node in [&nodes[2], &nodes[1]] {
        let join = node.start_join(endpoint, token, hash, key);
        node.wait_learner_added(Duration::from_secs(60));
        signal(&join, nix::sys::signal::Signal::SIGKILL);
        node.finish(join, Duration::from_secs(10));
        nodes[0].wait_members(Duration::from_secs(10), with_learner);
        if node.name == "node-3" {
            let reset = node.boot(&["reset", "--force"]);
            assert!(
                reset.status.success(),
                "reset after a killed join: {}",
                text(&reset)
            );
            assert!(
                text(&reset).contains("removed etcd member"),
                "{}",
                text(&reset)
            );
            node.assert_clean();
            nodes[0].wait_members(Duration::from_secs(10), only_first);
        }
    }
}

fn signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal).unwrap();
}
