//! Golden tests for the rendered static pod manifests: every fixture under `tests/fixtures/<case>/`
//! renders to exactly `expected/<component>.yaml`. Run with `BOOT_UPDATE_GOLDEN=1` to rewrite the
//! expected files after an intended change, then review the diff.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use boot::config::{self, Config, HostFacts, Overrides};
use boot::host::{HostRoot, RenderedFile};
use boot::render::{self, Templates, COMPONENTS};
use k8s_openapi::api::core::v1::Pod;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Fixed host facts, so the goldens do not depend on the machine running the tests.
fn facts() -> HostFacts {
    HostFacts {
        hostname: "fixture-host".into(),
        default_address: None,
        kubernetes_binary: None,
        etcd_binary: None,
        proxy_env: vec![],
        existing_ca_dirs: vec![
            "/etc/ca-certificates".into(),
            "/usr/share/ca-certificates".into(),
        ],
    }
}

fn load(case: &str) -> Config {
    let path = fixtures().join(case).join("config.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = config::parse(&path.display().to_string(), &text).unwrap();
    Config::build(docs, &Overrides::default(), &facts()).unwrap()
}

fn render(case: &str) -> Vec<RenderedFile> {
    let cfg = load(case);
    let templates = Templates::built_in().unwrap();
    render::manifests(
        &cfg,
        &HostRoot::system(),
        &templates,
        Path::new("/etc/kubernetes/manifests"),
        COMPONENTS,
        false,
    )
    .unwrap()
}

fn pod(file: &RenderedFile) -> Pod {
    serde_yaml::from_slice(&file.bytes)
        .unwrap_or_else(|e| panic!("{} is not a Pod: {e}", file.path.display()))
}

fn command(pod: &Pod) -> Vec<String> {
    pod.spec.as_ref().unwrap().containers[0]
        .command
        .clone()
        .unwrap()
}

fn flag_names(pod: &Pod) -> BTreeSet<String> {
    command(pod)
        .iter()
        .skip(1)
        .map(|f| {
            f.trim_start_matches("--")
                .split('=')
                .next()
                .unwrap()
                .to_string()
        })
        .collect()
}

fn flag(pod: &Pod, name: &str) -> Option<String> {
    let prefix = format!("--{name}=");
    command(pod)
        .iter()
        .find_map(|f| f.strip_prefix(&prefix).map(str::to_string))
}

fn by_name(files: &[RenderedFile], component: &str) -> Pod {
    pod(files
        .iter()
        .find(|f| f.path.ends_with(format!("{component}.yaml")))
        .unwrap_or_else(|| panic!("no {component}.yaml")))
}

#[test]
fn every_fixture_matches_its_golden_files() {
    let update = std::env::var_os("BOOT_UPDATE_GOLDEN").is_some();
    // A case is a directory with a config.yaml (tests/fixtures/nasty/ is another test's corpus).
    let mut cases: Vec<_> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|dir| dir.join("config.yaml").is_file())
        .map(|dir| dir.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 5,
        "expected at least five fixtures, found {cases:?}"
    );
    let mut mismatches = Vec::new();
    for case in &cases {
        let expected_dir = fixtures().join(case).join("expected");
        for file in render(case) {
            pod(&file);
            let expected_path = expected_dir.join(file.path.file_name().unwrap());
            if update {
                std::fs::create_dir_all(&expected_dir).unwrap();
                std::fs::write(&expected_path, &file.bytes).unwrap();
                continue;
            }
            let expected = std::fs::read(&expected_path)
                .unwrap_or_else(|_| panic!("missing golden {}", expected_path.display()));
            if expected != file.bytes {
                mismatches.push(format!(
                    "{case}/{}",
                    file.path.file_name().unwrap().to_string_lossy()
                ));
            }
        }
        let rendered: BTreeSet<_> = render(case)
            .iter()
            .map(|f| f.path.file_name().unwrap().to_owned())
            .collect();
        let golden: BTreeSet<_> = std::fs::read_dir(&expected_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            rendered, golden,
            "{case}: rendered files differ from the golden set"
        );
    }
    assert!(
        mismatches.is_empty(),
        "differs from golden (BOOT_UPDATE_GOLDEN=1 to update, then review): {mismatches:?}"
    );
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The flag lists of reference §4.2–4.5, default configuration, local etcd.
#[test]
fn default_flags_are_exactly_kubeadms() {
    // boot's secure defaults (encryption at rest, audit) off: then every flag is kubeadm's.
    let files = render("kubeadm-exact");
    assert_eq!(files.len(), 4);
    let apiserver = set(&[
        "advertise-address",
        "allow-privileged",
        "authorization-mode",
        "client-ca-file",
        "enable-admission-plugins",
        "enable-bootstrap-token-auth",
        "etcd-cafile",
        "etcd-certfile",
        "etcd-keyfile",
        "etcd-servers",
        "kubelet-client-certificate",
        "kubelet-client-key",
        "kubelet-preferred-address-types",
        "proxy-client-cert-file",
        "proxy-client-key-file",
        "requestheader-allowed-names",
        "requestheader-client-ca-file",
        "requestheader-extra-headers-prefix",
        "requestheader-group-headers",
        "requestheader-username-headers",
        "secure-port",
        "service-account-issuer",
        "service-account-key-file",
        "service-account-signing-key-file",
        "service-cluster-ip-range",
        "tls-cert-file",
        "tls-private-key-file",
    ]);
    assert_eq!(flag_names(&by_name(&files, "kube-apiserver")), apiserver);
    let controller_manager = set(&[
        "authentication-kubeconfig",
        "authorization-kubeconfig",
        "bind-address",
        "client-ca-file",
        "cluster-name",
        "cluster-signing-cert-file",
        "cluster-signing-key-file",
        "controllers",
        "kubeconfig",
        "leader-elect",
        "requestheader-client-ca-file",
        "root-ca-file",
        "service-account-private-key-file",
        "use-service-account-credentials",
    ]);
    assert_eq!(
        flag_names(&by_name(&files, "kube-controller-manager")),
        controller_manager
    );
    let scheduler = set(&[
        "authentication-kubeconfig",
        "authorization-kubeconfig",
        "bind-address",
        "kubeconfig",
        "leader-elect",
    ]);
    assert_eq!(flag_names(&by_name(&files, "kube-scheduler")), scheduler);
    let etcd = set(&[
        "advertise-client-urls",
        "cert-file",
        "client-cert-auth",
        "data-dir",
        "experimental-initial-corrupt-check",
        "experimental-watch-progress-notify-interval",
        "initial-advertise-peer-urls",
        "initial-cluster",
        "key-file",
        "listen-client-urls",
        "listen-metrics-urls",
        "listen-peer-urls",
        "name",
        "peer-cert-file",
        "peer-client-cert-auth",
        "peer-key-file",
        "peer-trusted-ca-file",
        "snapshot-count",
        "trusted-ca-file",
    ]);
    // kubeadm 1.34 pairs with etcd 3.6.5, whose renamed flags replace the experimental ones.
    let etcd_36: BTreeSet<String> = etcd
        .iter()
        .filter(|f| !f.starts_with("experimental-"))
        .cloned()
        .chain([
            "feature-gates".to_string(),
            "watch-progress-notify-interval".to_string(),
        ])
        .collect();
    assert_eq!(flag_names(&by_name(&files, "etcd")), etcd_36);
    assert_eq!(
        flag_names(&by_name(&render("k8s-1.31-etcd-3.5"), "etcd")),
        etcd
    );
    for file in &files {
        let command = command(&pod(file));
        let mut sorted = command[1..].to_vec();
        sorted.sort();
        assert_eq!(
            command[1..],
            sorted[..],
            "{} flags are not sorted",
            file.path.display()
        );
        assert_eq!(file.mode, 0o600);
    }
}

#[test]
fn extra_args_replace_defaults_and_keep_duplicates() {
    let files = render("custom");
    let apiserver = by_name(&files, "kube-apiserver");
    assert_eq!(
        flag(&apiserver, "authorization-mode").as_deref(),
        Some("Node,RBAC,Webhook")
    );
    let gates: Vec<_> = command(&apiserver)
        .into_iter()
        .filter(|f| f.starts_with("--feature-gates="))
        .collect();
    assert_eq!(gates, ["--feature-gates=A=true", "--feature-gates=B=false"]);
    assert_eq!(flag(&apiserver, "secure-port").as_deref(), Some("6444"));
    assert_eq!(
        flag(&apiserver, "service-account-issuer").as_deref(),
        Some("https://kubernetes.default.svc.lab.local")
    );
    let env: Vec<_> = apiserver.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(env, ["GOMAXPROCS", "TZ"], "env sorted by name");
    let volumes = apiserver.spec.as_ref().unwrap().volumes.clone().unwrap();
    let k8s_certs = volumes.iter().find(|v| v.name == "k8s-certs").unwrap();
    assert_eq!(
        k8s_certs.host_path.as_ref().unwrap().type_.as_deref(),
        Some("Directory"),
        "extraVolumes replace defaults of the same name"
    );
    let controller_manager = by_name(&files, "kube-controller-manager");
    assert_eq!(
        flag(&controller_manager, "cluster-cidr").as_deref(),
        Some("10.244.0.0/16")
    );
    assert_eq!(
        flag(&controller_manager, "allocate-node-cidrs").as_deref(),
        Some("true")
    );
    let probe = controller_manager.spec.unwrap().containers[0]
        .liveness_probe
        .clone()
        .unwrap();
    assert_eq!(
        probe.http_get.unwrap().host.as_deref(),
        Some(""),
        "a wildcard bind-address probes the pod IP"
    );
    let scheduler = by_name(&files, "kube-scheduler").spec.unwrap().containers[0]
        .startup_probe
        .clone()
        .unwrap();
    assert_eq!(
        scheduler.failure_threshold,
        Some(12),
        "startup budget follows timeouts.controlPlaneComponentHealthCheck"
    );
    assert_eq!(
        scheduler.http_get.unwrap().port,
        k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(10269)
    );
}

#[test]
fn external_etcd_drops_the_etcd_pod_and_wires_the_endpoints() {
    let files = render("external-etcd");
    assert_eq!(files.len(), 3);
    let apiserver = by_name(&files, "kube-apiserver");
    assert_eq!(
        flag(&apiserver, "etcd-servers").as_deref(),
        Some("https://127.0.0.11:2379,https://127.0.0.12:2379")
    );
    assert_eq!(
        flag(&apiserver, "etcd-cafile").as_deref(),
        Some("/etc/etcd/pki/ca.crt")
    );
    let volumes = apiserver.spec.unwrap().volumes.unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v.name == "etcd-certs-0"
                && v.host_path.as_ref().unwrap().path == "/etc/etcd/pki")
    );
}

#[test]
fn versions_decide_probes_ports_and_etcd_flags() {
    let old = render("k8s-1.31-etcd-3.5");
    let scheduler = by_name(&old, "kube-scheduler").spec.unwrap().containers[0].clone();
    assert_eq!(
        scheduler
            .liveness_probe
            .unwrap()
            .http_get
            .unwrap()
            .path
            .as_deref(),
        Some("/healthz")
    );
    assert!(scheduler.readiness_probe.is_none() && scheduler.ports.is_none());
    let etcd = by_name(&old, "etcd").spec.unwrap().containers[0].clone();
    assert_eq!(
        etcd.readiness_probe
            .unwrap()
            .http_get
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );

    let new = render("k8s-1.36-etcd-3.6");
    let scheduler = by_name(&new, "kube-scheduler").spec.unwrap().containers[0].clone();
    assert_eq!(
        scheduler
            .readiness_probe
            .unwrap()
            .http_get
            .unwrap()
            .path
            .as_deref(),
        Some("/readyz")
    );
    assert_eq!(
        scheduler.ports.unwrap()[0].name.as_deref(),
        Some("probe-port")
    );
    let etcd = by_name(&new, "etcd");
    assert_eq!(
        flag(&etcd, "feature-gates").as_deref(),
        Some("InitialCorruptCheck=true")
    );
    assert_eq!(
        flag(&etcd, "watch-progress-notify-interval").as_deref(),
        Some("5s")
    );

    let oldest = by_name(&render("etcd-3.5.9"), "etcd")
        .spec
        .unwrap()
        .containers[0]
        .clone();
    assert_eq!(
        oldest
            .liveness_probe
            .unwrap()
            .http_get
            .unwrap()
            .path
            .as_deref(),
        Some("/health?exclude=NOSPACE&serializable=true")
    );
    assert_eq!(
        oldest
            .startup_probe
            .unwrap()
            .http_get
            .unwrap()
            .path
            .as_deref(),
        Some("/health?serializable=false")
    );
    assert!(oldest.readiness_probe.is_none());
}

#[test]
fn ipv6_brackets_urls_and_uses_ipv6_loopback() {
    let files = render("ipv6");
    let etcd = by_name(&files, "etcd");
    assert_eq!(
        flag(&etcd, "listen-client-urls").as_deref(),
        Some("https://[::1]:2379,https://[::1]:2379")
    );
    assert_eq!(
        flag(&etcd, "listen-metrics-urls").as_deref(),
        Some("http://[::1]:2381")
    );
    let apiserver = by_name(&files, "kube-apiserver");
    assert_eq!(
        flag(&apiserver, "etcd-servers").as_deref(),
        Some("https://[::1]:2379")
    );
    let annotations = apiserver.metadata.annotations.unwrap();
    assert_eq!(
        annotations["kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint"],
        "[::1]:6443"
    );
    let probe = etcd.spec.unwrap().containers[0]
        .liveness_probe
        .clone()
        .unwrap();
    assert_eq!(probe.http_get.unwrap().host.as_deref(), Some("::1"));
}

#[test]
fn secure_defaults_add_encryption_at_rest_and_audit_to_the_api_server_only() {
    let secure = render("defaults");
    let plain = render("kubeadm-exact");
    let apiserver = by_name(&secure, "kube-apiserver");
    let added: BTreeSet<String> = flag_names(&apiserver)
        .difference(&flag_names(&by_name(&plain, "kube-apiserver")))
        .cloned()
        .collect();
    assert_eq!(
        added,
        set(&[
            "audit-log-maxage",
            "audit-log-maxbackup",
            "audit-log-maxsize",
            "audit-log-path",
            "audit-policy-file",
            "encryption-provider-config",
            "encryption-provider-config-automatic-reload",
        ])
    );
    assert_eq!(
        flag(&apiserver, "encryption-provider-config").as_deref(),
        Some("/etc/kubernetes/encryption/config.yaml")
    );
    assert_eq!(
        flag(&apiserver, "audit-log-path").as_deref(),
        Some("/var/log/kubernetes/audit/audit.log")
    );
    let volumes: BTreeSet<String> = apiserver
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    for name in ["encryption-config", "audit-policy", "audit-log"] {
        assert!(volumes.contains(name), "{name}: {volumes:?}");
    }
    // `defaults` follows boot's default kubernetesVersion, `kubeadm-exact` pins kubeadm's: the
    // image tags may differ, nothing else may.
    let without_image = |mut pod: Pod| {
        for container in &mut pod.spec.as_mut().unwrap().containers {
            container.image = None;
        }
        pod
    };
    for component in ["etcd", "kube-controller-manager", "kube-scheduler"] {
        assert_eq!(
            without_image(by_name(&secure, component)),
            without_image(by_name(&plain, component)),
            "{component} is unchanged"
        );
    }
}
