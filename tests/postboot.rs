//! The post-boot phase against the kube-apiserver stand-in: PKI, kubeconfigs and the API
//! server's manifest come from the real `boot manifests --pki`; the stand-in runs with the
//! manifest's flags (file paths moved under the temporary directory, etcd pointed at a closed
//! loopback port: API calls do not need etcd) and records every API request with the client
//! certificate's user and groups (`BOOT_STANDIN_RECORD`), which is what the tests assert on.
//! Every process started is killed by a Drop guard; waits poll a condition with a deadline.

#[path = "standin/testkit/mod.rs"]
mod testkit;

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use boot::config::{parse, ClusterConfiguration, Config, HostFacts, Overrides};
use boot::kubeapi::ApiError;
use boot::postboot::{self, PostBootError};
use serde_json::Value;
use testkit::{free_port, standin, wait_for, Proc, DEADLINE};

/// `timeouts.kubernetesAPICall`'s kubeadm default.
const API_CALL_TIMEOUT: Duration = Duration::from_secs(60);

struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    config: Config,
}

impl Cluster {
    fn kubernetes_dir(&self) -> PathBuf {
        self.dir.path().join("k")
    }

    fn record(&self) -> PathBuf {
        self.dir.path().join("record.jsonl")
    }

    /// The recorded API requests (discovery excluded) as `(method, path, user, body)`.
    fn requests(&self) -> Vec<(String, String, String, Value)> {
        fs::read_to_string(self.record())
            .unwrap_or_default()
            .lines()
            .map(|line| serde_json::from_str::<Value>(line).unwrap())
            .map(|r| {
                let path = r["path"].as_str().unwrap();
                let path = path.split('?').next().unwrap().to_string();
                let user = r["user"].as_str().unwrap_or("").to_string();
                (
                    r["method"].as_str().unwrap().to_string(),
                    path,
                    user,
                    r["body"].clone(),
                )
            })
            .collect()
    }
}

/// Writes the configuration, runs `boot manifests --pki` and resolves the same configuration
/// in-process for `cluster`.
fn cluster(cluster_name: &str) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = format!(
        "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  \
         advertiseAddress: 127.0.0.1\n  bindPort: {port}\nnodeRegistration:\n  name: n\n---\n\
         apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.34.2\n\
         clusterName: {cluster_name}\nencryptionAlgorithm: ECDSA-P256\napiServer:\n  extraArgs:\n  \
         - name: bind-address\n    value: 127.0.0.1\n"
    );
    let config_path = dir.path().join("config.yaml");
    fs::write(&config_path, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_boot"))
        .args(["manifests", "--pki", "--out"])
        .arg(dir.path().join("k"))
        .args([
            "--apiserver-advertise-address",
            "127.0.0.1",
            "--node-name",
            "n",
            "--config",
        ])
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "boot manifests: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let facts = HostFacts {
        hostname: "n".into(),
        default_address: Some([127, 0, 0, 1].into()),
        ..HostFacts::default()
    };
    let config = Config::build(
        parse("config.yaml", &text).unwrap(),
        &Overrides::default(),
        &facts,
    )
    .unwrap();
    Cluster { dir, port, config }
}

/// The stand-in with the rendered manifest's command line; `faults` go to
/// `BOOT_STANDIN_FAULTS`. Returns once it accepts connections.
fn start_apiserver(cluster: &Cluster, faults: &str) -> Proc {
    start_apiserver_with(cluster, faults, &cluster.dir.path().join("control"))
}

/// As [`start_apiserver`], with `BOOT_STANDIN_CONTROL` naming `control`.
fn start_apiserver_with(cluster: &Cluster, faults: &str, control: &Path) -> Proc {
    let manifest: Value = serde_yaml::from_str(
        &fs::read_to_string(
            cluster
                .kubernetes_dir()
                .join("manifests/kube-apiserver.yaml"),
        )
        .unwrap(),
    )
    .unwrap();
    let command = manifest["spec"]["containers"][0]["command"]
        .as_array()
        .unwrap();
    assert_eq!(command[0], "kube-apiserver");
    let under = format!("{}/", cluster.kubernetes_dir().display());
    let closed_etcd = format!("--etcd-servers=https://127.0.0.1:{}", free_port());
    let args: Vec<String> = command[1..]
        .iter()
        .map(|arg| arg.as_str().unwrap())
        .map(|arg| match arg.starts_with("--etcd-servers=") {
            true => closed_etcd.clone(),
            false => arg.replace("/etc/kubernetes/", &under),
        })
        .collect();
    assert!(args.contains(&"--bind-address=127.0.0.1".to_string()));
    assert!(args.contains(&format!("--secure-port={}", cluster.port)));
    let mut command = standin(cluster.dir.path(), "kube-apiserver");
    command
        .args(&args)
        .env("BOOT_STANDIN_RECORD", cluster.record())
        .env("BOOT_STANDIN_FAULTS", faults)
        .env("BOOT_STANDIN_CONTROL", control);
    let mut proc = Proc::start(command, cluster.dir.path(), "kube-apiserver");
    wait_for("the stand-in API server to listen", DEADLINE, || {
        if let Some(status) = proc.child.try_wait().unwrap() {
            panic!("kube-apiserver stand-in exited {status}: {}", proc.stderr());
        }
        TcpStream::connect(("127.0.0.1", cluster.port)).is_ok()
    });
    proc
}

fn run(
    cluster: &Cluster,
    cfg: &ClusterConfiguration,
) -> (Result<Vec<String>, PostBootError>, Duration) {
    run_within(cluster, cfg, API_CALL_TIMEOUT)
}

fn run_within(
    cluster: &Cluster,
    cfg: &ClusterConfiguration,
    timeout: Duration,
) -> (Result<Vec<String>, PostBootError>, Duration) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let start = Instant::now();
    let result = runtime.block_on(postboot::run(&cluster.kubernetes_dir(), cfg, timeout));
    (result, start.elapsed())
}

fn methods_and_paths(requests: &[(String, String, String, Value)]) -> Vec<String> {
    requests
        .iter()
        .map(|(m, p, _, _)| format!("{m} {p}"))
        .collect()
}

const CRBS: &str = "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings";
const CMS: &str = "/api/v1/namespaces/kube-system/configmaps";
const ROLES: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/roles";
const RBS: &str = "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system/rolebindings";

#[test]
fn creates_the_binding_and_uploads_the_config_as_admin_then_again_idempotently() {
    let mut cluster = cluster("postboot-test");
    let _apiserver = start_apiserver(&cluster, "");

    let (lines, took) = run(&cluster, &cluster.config.cluster);
    let lines = lines.unwrap_or_else(|e| panic!("post-boot failed: {e}; hint: {:?}", e.hint()));
    eprintln!("post-boot, first run: {took:?}");
    assert_eq!(
        lines,
        [
            "[post-boot] Created ClusterRoleBinding kubeadm:cluster-admins (group \
             kubeadm:cluster-admins → ClusterRole cluster-admin) with admin.conf",
            "[upload-config] Stored the ClusterConfiguration in ConfigMap kube-system/kubeadm-config (created)",
            "[upload-config] Role and RoleBinding kube-system/kubeadm:nodes-kubeadm-config let nodes \
             and bootstrap tokens read it",
        ]
    );
    let first = cluster.requests();
    assert_eq!(
        methods_and_paths(&first),
        [
            format!("POST {CRBS}"),
            format!("POST {CMS}"),
            format!("POST {ROLES}"),
            format!("POST {RBS}")
        ]
    );
    // The stand-in has no RBAC here, so admin.conf's identity does everything.
    for (_, path, user, _) in &first {
        assert_eq!(user, "kubernetes-admin", "{path}");
    }
    let record: Value = serde_json::from_str(
        fs::read_to_string(cluster.record())
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["groups"],
        serde_json::json!(["kubeadm:cluster-admins"])
    );

    let crb = &first[0].3;
    assert_eq!(crb["metadata"]["name"], "kubeadm:cluster-admins");
    assert_eq!(
        crb["roleRef"],
        serde_json::json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"})
    );
    assert_eq!(
        crb["subjects"],
        serde_json::json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "kubeadm:cluster-admins"}])
    );
    let cm = &first[1].3;
    assert_eq!(
        (
            cm["metadata"]["name"].as_str(),
            cm["metadata"]["namespace"].as_str()
        ),
        (Some("kubeadm-config"), Some("kube-system"))
    );
    let stored: ClusterConfiguration =
        serde_yaml::from_str(cm["data"]["ClusterConfiguration"].as_str().unwrap()).unwrap();
    assert_eq!(stored.cluster_name, "postboot-test");
    assert_eq!(stored.kind, "ClusterConfiguration");
    assert_eq!(
        serde_yaml::to_string(&stored).unwrap(),
        serde_yaml::to_string(&cluster.config.cluster).unwrap()
    );
    assert_eq!(
        first[2].3["rules"][0]["resourceNames"],
        serde_json::json!(["kubeadm-config"])
    );
    let subjects: Vec<&str> = first[3].3["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "system:bootstrappers:kubeadm:default-node-token",
            "system:nodes"
        ]
    );

    // Again, with a changed configuration: the binding exists, the objects are replaced.
    cluster.config.cluster.cluster_name = "renamed".into();
    let (lines, took) = run(&cluster, &cluster.config.cluster);
    let lines = lines.unwrap_or_else(|e| panic!("second post-boot failed: {e}"));
    eprintln!("post-boot, second run: {took:?}");
    assert_eq!(
        lines[0],
        "[post-boot] ClusterRoleBinding kubeadm:cluster-admins already exists"
    );
    assert!(
        lines[1].ends_with("kube-system/kubeadm-config (updated)"),
        "{}",
        lines[1]
    );
    let second = cluster.requests().split_off(first.len());
    assert_eq!(
        methods_and_paths(&second),
        [
            format!("POST {CRBS}"),
            format!("POST {CMS}"),
            format!("PUT {CMS}/kubeadm-config"),
            format!("POST {ROLES}"),
            format!("PUT {ROLES}/kubeadm:nodes-kubeadm-config"),
            format!("POST {RBS}"),
            format!("PUT {RBS}/kubeadm:nodes-kubeadm-config"),
        ]
    );
    let updated: ClusterConfiguration = serde_yaml::from_str(
        second[2].3["data"]["ClusterConfiguration"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(updated.cluster_name, "renamed");
}

#[test]
fn uses_super_admin_when_admin_is_forbidden_and_says_so_when_it_is_missing() {
    let cluster = cluster("postboot-rbac");
    let _apiserver = start_apiserver(&cluster, "rbac");
    let super_admin = cluster.kubernetes_dir().join("super-admin.conf");
    let aside = cluster.dir.path().join("super-admin.conf.aside");
    fs::rename(&super_admin, &aside).unwrap();

    let (result, _) = run(&cluster, &cluster.config.cluster);
    let err = result.expect_err("admin.conf is Forbidden and there is no super-admin.conf");
    assert!(matches!(err, PostBootError::NoSuperAdmin { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "{}",
            cluster.kubernetes_dir().join("admin.conf").display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}", super_admin.display())),
        "{text}"
    );
    assert!(err.hint().unwrap().contains("boot init phase kubeconfig"));

    fs::rename(&aside, &super_admin).unwrap();
    let before = cluster.requests().len();
    let (lines, took) = run(&cluster, &cluster.config.cluster);
    let lines = lines.unwrap_or_else(|e| panic!("post-boot failed: {e}"));
    eprintln!("post-boot via super-admin.conf: {took:?}");
    assert!(
        lines[0].ends_with("with super-admin.conf (admin.conf was Forbidden)"),
        "{}",
        lines[0]
    );
    let who: Vec<(String, String)> = cluster.requests()[before..]
        .iter()
        .map(|(m, p, u, _)| (format!("{m} {p}"), u.clone()))
        .collect();
    let admin = "kubernetes-admin".to_string();
    assert_eq!(
        who,
        [
            (format!("POST {CRBS}"), admin.clone()),
            (format!("POST {CRBS}"), "kubernetes-super-admin".to_string()),
            // Once the binding is in effect for it (asked, not assumed), admin.conf is
            // cluster-admin and does the rest, as in kubeadm.
            (
                "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews".to_string(),
                admin.clone(),
            ),
            (format!("POST {CMS}"), admin.clone()),
            (format!("POST {ROLES}"), admin.clone()),
            (format!("POST {RBS}"), admin),
        ]
    );
}

#[test]
fn an_api_server_that_is_not_there_fails_fast_naming_admin_conf() {
    let cluster = cluster("postboot-down");
    let (result, took) = run(&cluster, &cluster.config.cluster);
    let err = result.expect_err("nothing listens");
    eprintln!("post-boot with no API server failed after {took:?}: {err}");
    let text = err.to_string();
    let admin: &Path = &cluster.kubernetes_dir().join("admin.conf");
    assert!(
        text.starts_with(&format!(
            "cannot create ClusterRoleBinding kubeadm:cluster-admins with {}: ",
            admin.display()
        )),
        "{text}"
    );
    assert!(
        !text.contains("ErrorResponse") && !text.contains("Os {"),
        "Debug text: {text}"
    );
    assert!(
        err.hint().unwrap().contains(&format!(
            "nothing listens at https://127.0.0.1:{}",
            cluster.port
        )),
        "{:?}",
        err.hint()
    );
    assert!(
        took < Duration::from_secs(10),
        "retries are bounded: {took:?}"
    );
}

#[test]
fn an_api_server_that_never_answers_fails_within_the_api_call_timeout() {
    let cluster = cluster("postboot-hang");
    let control = cluster.dir.path().join("control");
    let _apiserver = start_apiserver_with(&cluster, "", &control);
    // Listening and then hanging: connections are accepted, requests never answered.
    fs::write(&control, "hang").unwrap();
    let timeout = Duration::from_millis(500);
    let (result, took) = run_within(&cluster, &cluster.config.cluster, timeout);
    let err = result.expect_err("no answer");
    eprintln!("post-boot against a hung API server failed after {took:?}: {err}");
    assert!(
        matches!(err, PostBootError::Api(ApiError::Timeout { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("no answer within 0.5s"), "{err}");
    assert!(took >= timeout && took < timeout * 4, "{took:?}");
}
