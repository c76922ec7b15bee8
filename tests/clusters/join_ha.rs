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

use crate::cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use cluster::{poll_until, require, text, walk, BOOT};

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
    run_ok("ip", args);
}

/// Runs `program` with `args`; its failure fails the test, saying what it printed.
fn run_ok(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {}: {}",
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
    /// `cluster_extra`: more ClusterConfiguration fields (indented YAML lines), e.g. `etcd:`.
    fn new(
        ns: &str,
        i: usize,
        subnet: u8,
        components: &Path,
        endpoint: &str,
        cluster_extra: &str,
    ) -> Node {
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
{cluster_extra}---
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

    /// `boot init --upload-certs` with this node's config, `token` and certificate `key`: the
    /// discovery hash it prints, and how long it took.
    fn init_uploading_certs(&self, token: &str, key: &str) -> (String, Duration) {
        let started = Instant::now();
        let init = self.boot(&[
            "init",
            "--config",
            self.config().to_str().unwrap(),
            "--upload-certs",
            "--certificate-key",
            key,
            "--token",
            token,
            IGNORE,
        ]);
        let took = started.elapsed();
        assert!(init.status.success(), "init: {}", text(&init));
        (ca_hash(&text(&init)), took)
    }

    /// `boot join` through `endpoint` with this node's address and name.
    fn join(&self, endpoint: &str, token: &str, hash: &str, key: &str) -> Output {
        self.join_command(endpoint, token, hash, key)
            .output()
            .unwrap()
    }

    /// `boot join --discovery-file FILE` without a token: the file's user authenticates the join.
    fn join_by_file(&self, file: &Path, key: &str) -> Output {
        self.join_with(&["--discovery-file", file.to_str().unwrap()], key)
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
        let status = poll_until(
            timeout,
            Duration::from_millis(100),
            || child.try_wait().unwrap(),
            || format!("{}: the join did not exit", self.name),
        );
        let said = std::fs::read_to_string(self.dir.path().join("join.out")).unwrap();
        (status, said)
    }

    /// Waits until the join journal records the learner etcd added.
    fn wait_learner_added(&self, timeout: Duration) {
        let journal = self.root().join("var/lib/boot/join-etcd.json");
        poll_until(
            timeout,
            Duration::from_millis(20),
            || {
                let read = std::fs::read(&journal).ok();
                let parsed =
                    read.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
                parsed.is_some_and(|j| !j["member"].is_null()).then_some(())
            },
            || {
                format!(
                    "{}: the join journal never recorded a member: {}",
                    self.name,
                    std::fs::read_to_string(self.dir.path().join("join.out")).unwrap_or_default()
                )
            },
        )
    }

    fn join_command(&self, endpoint: &str, token: &str, hash: &str, key: &str) -> Command {
        let discovery = [
            endpoint,
            "--token",
            token,
            "--discovery-token-ca-cert-hash",
            hash,
        ];
        self.join_with(&discovery, key)
    }

    /// `boot join` with `discovery` (arguments) and this node's address, name and config.
    fn join_with(&self, discovery: &[&str], key: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.ns, BOOT, "join"])
            .args(discovery)
            .args([
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
        poll_until(
            timeout,
            Duration::from_millis(500),
            || {
                let members = members_of(&self.members().ok()?);
                ready(&members).then_some(members)
            },
            || {
                format!(
                    "{}: etcd members not as expected: {:?}",
                    self.name,
                    self.members().map(|v| members_of(&v))
                )
            },
        )
    }

    fn wait_readyz(&self, timeout: Duration) {
        poll_until(
            timeout,
            Duration::from_millis(500),
            || self.readyz().then_some(()),
            || {
                format!(
                    "{}: the API server does not answer /readyz: {}",
                    self.name,
                    text(&self.kubectl(&["get", "--raw", "/readyz"]))
                )
            },
        )
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
        .map(|(i, ns)| Node::new(ns, i + 1, subnet, components, &endpoint, ""))
        .collect();
    let (token, key) = secrets();

    let (hash, init_took) = nodes[0].init_uploading_certs(&token, &key);
    nodes[0].wait_members(Duration::from_secs(30), |m| voters(m, &["node-1"]));

    let unreachable = format!("10.231.{subnet}.250:6443");
    bad_join_data_changes_nothing(&nodes, &endpoint, &unreachable, (&token, &hash, &key));

    interrupted_joins_roll_back(&nodes, &endpoint, (&token, &hash, &key));

    // node-2 joins with the token; node-3 with node-1's admin.conf as the discovery file and no
    // token (kubeadm's file discovery with embedded credentials: its client certificate).
    let discovery_file = nodes[2].dir.path().join("discovery.conf");
    std::fs::copy(
        nodes[0].root().join("etc/kubernetes/admin.conf"),
        &discovery_file,
    )
    .unwrap();
    let mut join_took = Vec::new();
    for node in &nodes[1..] {
        let started = Instant::now();
        let out = match node.name.as_str() {
            "node-3" => node.join_by_file(&discovery_file, &key),
            _ => node.join(&endpoint, &token, &hash, &key),
        };
        join_took.push(started.elapsed());
        assert!(out.status.success(), "{} join: {}", node.name, text(&out));
        let said = text(&out);
        assert!(said.contains("promoted"), "{said}");
        if node.name == "node-3" {
            assert!(
                said.contains("Using a client certificate of the discovery file's user"),
                "{said}"
            );
        }
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
    rotating_the_key_on_one_of_three_is_refused(&nodes[1]);

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

/// The encryption configuration is per node: a rotation on one would leave the other API
/// servers unable to read what this one writes with the new key. Refused, nothing changed.
fn rotating_the_key_on_one_of_three_is_refused(node: &Node) {
    let config = node.root().join("etc/kubernetes/encryption/config.yaml");
    let before = std::fs::read(&config).unwrap();
    let rotate = node.boot(&[
        "secrets",
        "rotate-key",
        "--config",
        node.config().to_str().unwrap(),
    ]);
    let said = text(&rotate);
    assert!(
        !rotate.status.success(),
        "rotate-key ran on one of three: {said}"
    );
    // Each API server adds its address to the kubernetes Service's endpoints itself, at start and
    // every 10 s: node 3's may not be there yet, the others are.
    assert!(
        said.contains("3 API servers serve this cluster")
            || said.contains("2 API servers serve this cluster"),
        "{said}"
    );
    assert_eq!(std::fs::read(&config).unwrap(), before, "{said}");
    assert!(!node
        .root()
        .join("var/lib/boot/encryption-rotation.json")
        .exists());
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

/// Two control-plane nodes on one external etcd (`etcd.external`, TLS with client certificates
/// from a CA this test makes), in the host namespace on an address of the test's bridge: init with
/// `--upload-certs` shares the etcd client files, the join writes them where the configuration
/// says, no node runs etcd of its own, both API servers see each other's writes, resets leave the
/// external etcd's membership and data alone and nothing behind.
#[test]
fn two_nodes_share_an_external_etcd() {
    if !prerequisites() || require::tool("openssl").is_none() {
        return;
    }
    let Some(dir) = cluster::real_components() else {
        return;
    };
    external_scenario(&dir);
}

/// Where the nodes find the external etcd's client files (the first node's are the test's).
const EXTERNAL_CLIENT_DIR: &str = "etc/etcd-client";

fn external_scenario(components: &Path) {
    // Another bridge and subnet than the stacked test's, which runs in parallel.
    let tag = format!("e{:03x}", std::process::id() & 0xfff);
    let subnet = ((std::process::id() + 100) % 200 + 20) as u8;
    let network = Network::new(&tag, subnet, 2);
    let host_address = format!("10.231.{subnet}.100");
    ip(&[
        "addr",
        "add",
        &format!("{host_address}/24"),
        "dev",
        &network.bridge,
    ]);
    let etcd = ExternalEtcd::start(&host_address);
    let extra = format!(
        "etcd:\n  external:\n    endpoints: [{}]\n    caFile: /{EXTERNAL_CLIENT_DIR}/ca.crt\n    certFile: /{EXTERNAL_CLIENT_DIR}/client.crt\n    keyFile: /{EXTERNAL_CLIENT_DIR}/client.key\n",
        etcd.endpoint
    );
    let endpoint = format!("10.231.{subnet}.1:6443");
    let nodes: Vec<Node> = network
        .namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| Node::new(ns, i + 1, subnet, components, &endpoint, &extra))
        .collect();
    let client_dir = nodes[0].root().join(EXTERNAL_CLIENT_DIR);
    std::fs::create_dir_all(&client_dir).unwrap();
    for name in ["ca.crt", "client.crt", "client.key"] {
        std::fs::copy(etcd.dir.path().join(name), client_dir.join(name)).unwrap();
    }
    let (token, key) = secrets();

    let (hash, init_took) = nodes[0].init_uploading_certs(&token, &key);
    let started = Instant::now();
    let join = nodes[1].join(&endpoint, &token, &hash, &key);
    let join_took = started.elapsed();
    assert!(join.status.success(), "join: {}", text(&join));
    assert!(!text(&join).contains("learner"), "{}", text(&join));
    eprintln!(
        "NUMBERS: external etcd: init {:.1}s, join {:.1}s",
        init_took.as_secs_f64(),
        join_took.as_secs_f64()
    );
    // The join wrote the etcd client files where the configuration says, keys 0600.
    let joined_dir = nodes[1].root().join(EXTERNAL_CLIENT_DIR);
    for name in ["ca.crt", "client.crt", "client.key"] {
        assert_eq!(
            std::fs::read(joined_dir.join(name)).unwrap(),
            std::fs::read(client_dir.join(name)).unwrap(),
            "{name}"
        );
    }
    let mode = std::fs::metadata(joined_dir.join("client.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );
    for node in &nodes {
        let manifests = node.root().join("etc/kubernetes/manifests");
        assert!(
            !manifests.join("etcd.yaml").exists(),
            "{}: a local etcd manifest",
            node.name
        );
        node.wait_readyz(Duration::from_secs(120));
    }
    // Each API server sees what the other wrote.
    for (writer, reader, name) in [(0, 1, "from-node-1"), (1, 0, "from-node-2")] {
        let created = nodes[writer].kubectl(&[
            "-n",
            "default",
            "create",
            "configmap",
            name,
            "--from-literal=k=v",
        ]);
        assert!(created.status.success(), "{name}: {}", text(&created));
        let read = nodes[reader].kubectl(&[
            "-n",
            "default",
            "get",
            "configmap",
            name,
            "-o",
            "jsonpath={.data.k}",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&read.stdout),
            "v",
            "{name}: {}",
            text(&read)
        );
    }
    assert_eq!(etcd.member_names(), ["external"]);

    // A node's reset leaves the external etcd alone: its member and the cluster's data stay.
    let reset = nodes[1].boot(&["reset", "--force"]);
    assert!(reset.status.success(), "reset node-2: {}", text(&reset));
    assert!(!text(&reset).contains("etcd member"), "{}", text(&reset));
    nodes[1].assert_clean();
    assert_eq!(etcd.member_names(), ["external"]);
    let read = nodes[0].kubectl(&[
        "-n",
        "default",
        "get",
        "configmap",
        "from-node-2",
        "-o",
        "jsonpath={.data.k}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&read.stdout),
        "v",
        "{}",
        text(&read)
    );
    assert!(etcd.has_key("/registry/configmaps/default/from-node-2"));

    let reset = nodes[0].boot(&["reset", "--force"]);
    assert!(reset.status.success(), "reset node-1: {}", text(&reset));
    assert!(etcd.has_key("/registry/configmaps/default/from-node-1"));
    // The client files this test put on node 1 are the test's, as kubeadm leaves an external
    // etcd's files it did not write; what boot wrote is gone.
    std::fs::remove_dir_all(&client_dir).unwrap();
    std::fs::remove_dir(nodes[0].root().join("etc")).unwrap();
    nodes[0].assert_clean();
}

/// Debian's etcd with TLS client authentication, listening on `address` in the host namespace;
/// dropping it kills it (its data is in its temporary directory).
struct ExternalEtcd {
    child: Child,
    dir: tempfile::TempDir,
    endpoint: String,
}

impl ExternalEtcd {
    fn start(address: &str) -> ExternalEtcd {
        let dir = tempfile::tempdir().unwrap();
        let at = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &at("ca.key"),
            "-out",
            &at("ca.crt"),
            "-days",
            "1",
            "-subj",
            "/CN=external-etcd-ca",
        ]);
        for (name, cn, ext) in [
            (
                "server",
                "external-etcd",
                format!("subjectAltName=IP:{address}\nextendedKeyUsage=serverAuth,clientAuth\n"),
            ),
            (
                "client",
                "kube-apiserver-etcd-client",
                "extendedKeyUsage=clientAuth\n".to_string(),
            ),
        ] {
            std::fs::write(dir.path().join(format!("{name}.ext")), ext).unwrap();
            openssl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &at(&format!("{name}.key")),
                "-out",
                &at(&format!("{name}.csr")),
                "-subj",
                &format!("/CN={cn}"),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &at(&format!("{name}.csr")),
                "-CA",
                &at("ca.crt"),
                "-CAkey",
                &at("ca.key"),
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                &at(&format!("{name}.crt")),
                "-extfile",
                &at(&format!("{name}.ext")),
            ]);
        }
        let (client, peer) = (cluster::ports::free_port(), cluster::ports::free_port());
        let endpoint = format!("https://{address}:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).unwrap();
        let child = Command::new("/usr/bin/etcd")
            .args(["--name", "external", "--data-dir", &at("data")])
            .args([
                "--listen-client-urls",
                &endpoint,
                "--advertise-client-urls",
                &endpoint,
            ])
            .args([
                "--listen-peer-urls",
                &peer_url,
                "--initial-advertise-peer-urls",
                &peer_url,
            ])
            .args(["--initial-cluster", &format!("external={peer_url}")])
            .args([
                "--cert-file",
                &at("server.crt"),
                "--key-file",
                &at("server.key"),
            ])
            .args(["--trusted-ca-file", &at("ca.crt"), "--client-cert-auth"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let etcd = ExternalEtcd {
            child,
            dir,
            endpoint,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = etcd.etcdctl(&["endpoint", "health"]);
            if health.status.success() {
                return etcd;
            }
            assert!(
                Instant::now() < deadline,
                "the external etcd is not healthy: {}\n{}",
                text(&health),
                std::fs::read_to_string(etcd.dir.path().join("etcd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn etcdctl(&self, args: &[&str]) -> Output {
        let at = |name: &str| self.dir.path().join(name);
        Command::new("etcdctl")
            .arg("--endpoints")
            .arg(&self.endpoint)
            .arg("--cacert")
            .arg(at("ca.crt"))
            .arg("--cert")
            .arg(at("client.crt"))
            .arg("--key")
            .arg(at("client.key"))
            .arg("--command-timeout=5s")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn member_names(&self) -> Vec<String> {
        let out = self.etcdctl(&["member", "list", "-w", "json"]);
        assert!(out.status.success(), "{}", text(&out));
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        members_of(&list).into_iter().map(|m| m.name).collect()
    }

    fn has_key(&self, key: &str) -> bool {
        let out = self.etcdctl(&["get", key, "--keys-only"]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).contains(key)
    }
}

impl Drop for ExternalEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(args: &[&str]) {
    run_ok("openssl", args);
}
