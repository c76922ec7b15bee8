//! Golden tests for the CoreDNS and kube-proxy addons: for the `defaults`, `ipv6` and `custom`
//! fixtures, `templates/addons/` renders exactly `tests/fixtures/<case>/expected-addons/*.yaml`
//! (`BOOT_UPDATE_GOLDEN=1` rewrites them; review the diff), and the objects are kubeadm's: typed
//! checks of the names, images, DNS address, tolerations, RBAC and the KubeProxyConfiguration.

use std::path::{Path, PathBuf};

use boot::addons::{self, Object};
use boot::config::{self, Config, HostFacts, Overrides};
use boot::render::Templates;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn load(case: &str) -> Config {
    let path = fixtures().join(case).join("config.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = config::parse(&path.display().to_string(), &text).unwrap();
    let facts = HostFacts {
        hostname: "fixture-host".into(),
        ..HostFacts::default()
    };
    Config::build(docs, &Overrides::default(), &facts).unwrap()
}

fn rendered(case: &str) -> (addons::Rendered, addons::Rendered) {
    let cfg = load(case);
    let templates = Templates::built_in().unwrap();
    (
        addons::render::coredns(&cfg, &templates, 2).unwrap(),
        addons::render::kube_proxy(&cfg, &templates).unwrap(),
    )
}

fn typed<T: serde::de::DeserializeOwned>(objects: &[Object], kind: &str, name: &str) -> T {
    let object = objects
        .iter()
        .find(|o| o.kind == kind && o.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    serde_json::from_value(object.body.clone())
        .unwrap_or_else(|e| panic!("{kind} {name} does not parse: {e}"))
}

#[test]
fn addons_match_their_golden_files() {
    let update = std::env::var_os("BOOT_UPDATE_GOLDEN").is_some();
    let mut mismatches = Vec::new();
    for case in ["defaults", "ipv6", "custom"] {
        let dir = fixtures().join(case).join("expected-addons");
        let (coredns, proxy) = rendered(case);
        for (file, text) in [
            ("coredns.yaml", &coredns.text),
            ("kube-proxy.yaml", &proxy.text),
        ] {
            let path = dir.join(file);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, text).unwrap();
                continue;
            }
            let golden = std::fs::read_to_string(&path)
                .unwrap_or_else(|_| panic!("missing golden {}", path.display()));
            if golden != *text {
                mismatches.push(format!("{case}/{file}"));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "differs from golden (BOOT_UPDATE_GOLDEN=1 to update, then review): {mismatches:?}"
    );
}

#[test]
fn coredns_is_kubeadms_deployment_service_and_rbac() {
    let (coredns, _) = rendered("defaults");
    let kinds: Vec<String> = coredns.objects.iter().map(Object::describe).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount kube-system/coredns",
            "ClusterRole system:coredns",
            "ClusterRoleBinding system:coredns",
            "ConfigMap kube-system/coredns",
            "Deployment kube-system/coredns",
            "Service kube-system/kube-dns",
        ]
    );
    let deployment: Deployment = typed(&coredns.objects, "Deployment", "coredns");
    let spec = deployment.spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("coredns"));
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    let tolerations: Vec<_> = pod
        .tolerations
        .unwrap()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.effect.unwrap_or_default()))
        .collect();
    assert_eq!(
        tolerations,
        [
            ("CriticalAddonsOnly".to_string(), String::new()),
            (
                "node-role.kubernetes.io/control-plane".to_string(),
                "NoSchedule".to_string()
            )
        ]
    );
    assert!(pod.affinity.unwrap().pod_anti_affinity.is_some());
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.k8s.io/coredns/coredns:v1.14.2")
    );
    let service: Service = typed(&coredns.objects, "Service", "kube-dns");
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.96.0.10"));
    assert_eq!(spec.ports.unwrap().len(), 3);
    let corefile: ConfigMap = typed(&coredns.objects, "ConfigMap", "coredns");
    let corefile = &corefile.data.unwrap()["Corefile"];
    assert!(
        corefile.contains("kubernetes cluster.local in-addr.arpa ip6.arpa {"),
        "{corefile}"
    );
    let role: ClusterRole = typed(&coredns.objects, "ClusterRole", "system:coredns");
    assert_eq!(
        role.rules.unwrap()[1].resources,
        Some(vec!["endpointslices".into()])
    );
    let binding: ClusterRoleBinding =
        typed(&coredns.objects, "ClusterRoleBinding", "system:coredns");
    let subject = &binding.subjects.unwrap()[0];
    assert_eq!(
        (subject.kind.as_str(), subject.name.as_str()),
        ("ServiceAccount", "coredns")
    );
}

#[test]
fn kube_dns_sits_at_the_tenth_address_of_the_service_cidr_in_either_family() {
    for (case, ip, domain) in [
        ("ipv6", "fd00:10:96::a", "cluster.local"),
        ("custom", "10.112.0.10", "lab.local"),
    ] {
        let (coredns, _) = rendered(case);
        let service: Service = typed(&coredns.objects, "Service", "kube-dns");
        assert_eq!(
            service.spec.unwrap().cluster_ip.as_deref(),
            Some(ip),
            "{case}"
        );
        let corefile: ConfigMap = typed(&coredns.objects, "ConfigMap", "coredns");
        assert!(corefile.data.unwrap()["Corefile"].contains(&format!("disable success {domain}")));
    }
    // A custom repository has no `coredns/` sub-path (kubeadm's GetDNSImage).
    let (coredns, proxy) = rendered("custom");
    let deployment: Deployment = typed(&coredns.objects, "Deployment", "coredns");
    assert_eq!(
        deployment.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("mirror.example.test/k8s/coredns:v1.12.0")
    );
    let daemonset: DaemonSet = typed(&proxy.objects, "DaemonSet", "kube-proxy");
    assert_eq!(
        daemonset.spec.unwrap().template.spec.unwrap().containers[0]
            .image
            .as_deref(),
        Some("mirror.example.test/k8s/kube-proxy:v1.33.5")
    );
}

#[test]
fn kube_proxy_is_kubeadms_daemonset_configmap_and_rbac() {
    let (_, proxy) = rendered("custom");
    let kinds: Vec<String> = proxy.objects.iter().map(Object::describe).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount kube-system/kube-proxy",
            "ClusterRoleBinding kubeadm:node-proxier",
            "Role kube-system/kube-proxy",
            "RoleBinding kube-system/kube-proxy",
            "ConfigMap kube-system/kube-proxy",
            "DaemonSet kube-system/kube-proxy",
        ]
    );
    let daemonset: DaemonSet = typed(&proxy.objects, "DaemonSet", "kube-proxy");
    let pod = daemonset.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    let container = &pod.containers[0];
    assert_eq!(
        container.security_context.as_ref().unwrap().privileged,
        Some(true)
    );
    assert_eq!(
        container.command.as_ref().unwrap()[1],
        "--config=/var/lib/kube-proxy/config.conf"
    );
    let map: ConfigMap = typed(&proxy.objects, "ConfigMap", "kube-proxy");
    let data = map.data.unwrap();
    let kubeconfig: serde_yaml::Value = serde_yaml::from_str(&data["kubeconfig.conf"]).unwrap();
    assert_eq!(
        kubeconfig["clusters"][0]["cluster"]["server"], "https://cp.example.test:8443",
        "the control-plane endpoint"
    );
    let config: serde_yaml::Value = serde_yaml::from_str(&data["config.conf"]).unwrap();
    assert_eq!(config["kind"], "KubeProxyConfiguration");
    assert_eq!(config["clusterCIDR"], "10.244.0.0/16");
    assert_eq!(config["bindAddress"], "0.0.0.0");
    assert_eq!(
        config["clientConnection"]["kubeconfig"],
        "/var/lib/kube-proxy/kubeconfig.conf"
    );
    let nodes: RoleBinding = typed(&proxy.objects, "RoleBinding", "kube-proxy");
    assert_eq!(
        nodes.subjects.unwrap()[0].name,
        "system:bootstrappers:kubeadm:default-node-token"
    );
    // IPv6: kube-proxy binds to `::`; without a pod subnet there is no clusterCIDR.
    let (_, v6) = rendered("ipv6");
    let map: ConfigMap = typed(&v6.objects, "ConfigMap", "kube-proxy");
    let config: serde_yaml::Value =
        serde_yaml::from_str(&map.data.unwrap()["config.conf"]).unwrap();
    assert_eq!(config["bindAddress"], "::");
    let (_, defaults) = rendered("defaults");
    let map: ConfigMap = typed(&defaults.objects, "ConfigMap", "kube-proxy");
    assert!(!map.data.unwrap()["config.conf"].contains("clusterCIDR"));
}

#[test]
fn disabled_addons_are_neither_applied_nor_listed() {
    let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {advertiseAddress: 10.0.0.1}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.2\ndns: {disabled: true}\n";
    let docs = config::parse("c.yaml", text).unwrap();
    let facts = HostFacts {
        hostname: "h".into(),
        ..HostFacts::default()
    };
    let cfg = Config::build(docs, &Overrides::default(), &facts).unwrap();
    let enabled = addons::Enabled::of(&cfg.cluster);
    assert!(!enabled.coredns && enabled.kube_proxy);
    assert!(!addons::images::all_images(&cfg)
        .iter()
        .any(|i| i.contains("coredns")));
}
