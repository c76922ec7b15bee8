//! Property tests: the configuration loader (`config::parse` + `Config::build`, then rendering
//! what it accepts) and the pod manifest parser (`StaticPod::parse`) never panic, whatever the
//! input. Inputs are valid files with one field replaced by a hostile value (huge, negative,
//! overflowing, oddly typed, aliased, nested), and token soup that is barely YAML. An error names
//! the file, and for a replaced field the field. Case counts are in `CASES`; docs/src/testing.md states
//! the total per run.

use std::net::IpAddr;
use std::path::Path;

use boot::agent::source::StaticPod;
use boot::config::{self, Config, HostFacts, Overrides};
use boot::host::HostRoot;
use boot::render::{self, Templates, COMPONENTS};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

/// Cases per property (four properties: 4 × 1500 inputs per run).
const CASES: u32 = 1500;

fn facts() -> HostFacts {
    HostFacts {
        hostname: "fuzz-node".into(),
        default_address: Some(IpAddr::from([192, 0, 2, 10])),
        ..HostFacts::default()
    }
}

/// Loads `text` as `fuzz.yaml`; a configuration it accepts must also render.
fn load_and_render(text: &str) -> Result<(), String> {
    let built = config::parse("fuzz.yaml", text)
        .and_then(|docs| Config::build(docs, &Overrides::default(), &facts()));
    let cfg = built.map_err(|e| e.to_string())?;
    let templates = Templates::built_in().unwrap();
    render::manifests(
        &cfg,
        &HostRoot::system(),
        &templates,
        Path::new("/etc/kubernetes/manifests"),
        COMPONENTS,
        false,
    )
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// Values no field expects, and some it does at the edges of their range.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("99999999999999999999999999".to_string()),
        Just("-1".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("18446744073709551616".to_string()),
        Just("65536".to_string()),
        Just("0".to_string()),
        Just("1e308".to_string()),
        Just(".nan".to_string()),
        Just("-.inf".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]".to_string()),
        Just("*undefined_alias".to_string()),
        Just("!!binary aGVsbG8=".to_string()),
        Just("\"\\u0000\"".to_string()),
        Just("\"../../../../etc/shadow\"".to_string()),
        Just("2562047h47m17s".to_string()),
        Just("99999999999999999999h".to_string()),
        Just("1.5.5s".to_string()),
        Just("-5m".to_string()),
        Just("0s".to_string()),
        Just("\"1.2.3.4:99999\"".to_string()),
        Just("\"[::1]:65536\"".to_string()),
        Just("10.0.0.0/33".to_string()),
        Just("\"::/0\"".to_string()),
        Just("v99999999999999999999.0.0".to_string()),
        Just("\"v1.36.2-\"".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("{n}h")),
        any::<f64>().prop_map(|n| format!("{n}s")),
        "[a-zA-Z0-9:./_\\-\\[\\]{}*&!%@`|>#, ]{0,40}".prop_map(|s| format!("{s:?}")),
        any::<String>().prop_map(|s| format!("{s:?}")),
    ]
}

/// Where a hostile value goes: (document, block-style path) in a valid configuration.
const CONFIG_FIELDS: &[(&str, &[&str])] = &[
    ("InitConfiguration", &["localAPIEndpoint", "bindPort"]),
    (
        "InitConfiguration",
        &["localAPIEndpoint", "advertiseAddress"],
    ),
    ("InitConfiguration", &["nodeRegistration", "name"]),
    (
        "InitConfiguration",
        &["timeouts", "controlPlaneComponentHealthCheck"],
    ),
    ("ClusterConfiguration", &["kubernetesVersion"]),
    ("ClusterConfiguration", &["controlPlaneEndpoint"]),
    ("ClusterConfiguration", &["certificateValidityPeriod"]),
    ("ClusterConfiguration", &["caCertificateValidityPeriod"]),
    ("ClusterConfiguration", &["encryptionAlgorithm"]),
    ("ClusterConfiguration", &["certificatesDir"]),
    ("ClusterConfiguration", &["clusterName"]),
    ("ClusterConfiguration", &["networking", "podSubnet"]),
    ("ClusterConfiguration", &["networking", "serviceSubnet"]),
    ("ClusterConfiguration", &["networking", "dnsDomain"]),
    ("ClusterConfiguration", &["apiServer", "certSANs"]),
    ("ClusterConfiguration", &["etcd", "local", "dataDir"]),
    ("ClusterConfiguration", &["etcd", "local", "imageTag"]),
    ("BootConfiguration", &["binDirs"]),
    ("BootConfiguration", &["etcdVersion"]),
    ("BootConfiguration", &["agent", "mode"]),
    ("BootConfiguration", &["agent", "statusAddress"]),
    ("BootConfiguration", &["agent", "relistPeriod"]),
    ("BootConfiguration", &["agent", "backoff", "initial"]),
    ("BootConfiguration", &["agent", "backoff", "max"]),
    ("BootConfiguration", &["agent", "backoff", "resetAfter"]),
];

fn api_version(kind: &str) -> &'static str {
    if kind == "BootConfiguration" {
        "boot/v1alpha1"
    } else {
        "kubeadm.k8s.io/v1beta4"
    }
}

/// A valid three-document configuration with `value` at `path` of `kind`.
fn config_with(kind: &str, path: &[&str], value: &str) -> String {
    let mut out = String::new();
    for doc in [
        "InitConfiguration",
        "ClusterConfiguration",
        "BootConfiguration",
    ] {
        out.push_str(&format!(
            "---\napiVersion: {}\nkind: {doc}\n",
            api_version(doc)
        ));
        if doc == "ClusterConfiguration" {
            out.push_str("encryptionAlgorithm: ECDSA-P256\n");
        }
        if doc == kind {
            for (depth, key) in path.iter().enumerate() {
                let indent = "  ".repeat(depth);
                if depth + 1 == path.len() {
                    out.push_str(&format!("{indent}{key}: {value}\n"));
                } else {
                    out.push_str(&format!("{indent}{key}:\n"));
                }
            }
        }
    }
    out
}

/// Barely YAML: tokens of YAML's syntax in random order.
fn token_soup() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("apiVersion: kubeadm.k8s.io/v1beta4\n"),
        Just("apiVersion: boot/v1alpha1\n"),
        Just("kind: ClusterConfiguration\n"),
        Just("kind: InitConfiguration\n"),
        Just("kind: BootConfiguration\n"),
        Just("---\n"),
        Just("\n"),
        Just("  "),
        Just("- "),
        Just(": "),
        Just("["),
        Just("]"),
        Just("{"),
        Just("}"),
        Just(","),
        Just("&a "),
        Just("*a"),
        Just("<<: *a\n"),
        Just("!!str "),
        Just("? "),
        Just("|\n"),
        Just(">-\n"),
        Just("'"),
        Just("\""),
        Just("#"),
        Just("%YAML 1.2\n"),
        Just("networking:\n"),
        Just("podSubnet: "),
        Just("agent:\n"),
        Just("backoff: "),
        Just("certificateValidityPeriod: "),
        Just("bindPort: "),
        Just("99999999999999999999h"),
        Just("-1"),
        Just("\u{feff}"),
        Just("\t"),
        Just("\0"),
    ];
    prop::collection::vec(token, 0..60).prop_map(|t| t.concat())
}

/// A valid static pod with `value` at one of its fields.
fn pod_with(field: usize, value: &str) -> String {
    let mut fields = [
        "name: fuzz".to_string(),
        "namespace: kube-system".to_string(),
        "uid: \"\"".to_string(),
        "hostNetwork: true".to_string(),
        "terminationGracePeriodSeconds: 30".to_string(),
        "cname: main".to_string(),
        "command: [sh, -c, 'sleep 1']".to_string(),
        "containerPort: 8080".to_string(),
        "memory: 64Mi".to_string(),
        "periodSeconds: 10".to_string(),
        "runAsUser: 0".to_string(),
        "path: /tmp".to_string(),
    ];
    let key = fields[field].split_once(": ").unwrap().0.to_string();
    fields[field] = format!("{key}: {value}");
    let f = |i: usize| fields[i].split_once(": ").unwrap().1.to_string();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: {}\n  uid: {}\nspec:\n  \
         hostNetwork: {}\n  terminationGracePeriodSeconds: {}\n  securityContext:\n    \
         runAsUser: {}\n  containers:\n  - name: {}\n    image: busybox\n    command: {}\n    \
         ports:\n    - containerPort: {}\n    resources:\n      limits:\n        memory: {}\n    \
         livenessProbe:\n      tcpSocket: {{port: 8080}}\n      periodSeconds: {}\n    \
         volumeMounts:\n    - {{name: data, mountPath: /data}}\n  volumes:\n  - name: data\n    \
         hostPath: {{path: {}}}\n",
        f(0),
        f(1),
        f(2),
        f(3),
        f(4),
        f(10),
        f(5),
        f(6),
        f(7),
        f(8),
        f(9),
        f(11)
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: CASES, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_hostile_field_value_is_an_error_naming_the_field_or_valid(
        field in 0..CONFIG_FIELDS.len(),
        value in hostile_value(),
    ) {
        let (kind, path) = CONFIG_FIELDS[field];
        let text = config_with(kind, path, &value);
        if let Err(error) = load_and_render(&text) {
            prop_assert!(error.starts_with("fuzz.yaml"), "{error}\n{text}");
            // The error is about this document's field (or a value it implies), at its line.
            let leaf = path.last().unwrap();
            prop_assert!(
                error.contains(leaf) || error.contains(kind) || error.contains("malformed YAML"),
                "{error}\n{text}"
            );
        }
    }

    #[test]
    fn token_soup_never_panics_the_config_loader(text in token_soup()) {
        if let Err(error) = load_and_render(&text) {
            prop_assert!(error.starts_with("fuzz.yaml"), "{error}\n{text:?}");
        }
    }

    #[test]
    fn a_hostile_pod_field_never_panics_the_manifest_parser(
        field in 0..12usize,
        value in hostile_value(),
    ) {
        let text = pod_with(field, &value);
        let _ = StaticPod::parse(Path::new("/etc/kubernetes/manifests/fuzz.yaml"), text.as_bytes(), "node");
    }

    #[test]
    fn token_soup_and_bytes_never_panic_the_manifest_parser(
        text in token_soup(),
        bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let path = Path::new("/etc/kubernetes/manifests/fuzz.yaml");
        let _ = StaticPod::parse(path, text.as_bytes(), "node");
        let _ = StaticPod::parse(path, &bytes, "node");
    }
}

#[test]
fn the_valid_base_configuration_and_pod_are_accepted() {
    // Otherwise every case above would only test the first error.
    let (kind, path) = CONFIG_FIELDS[2];
    load_and_render(&config_with(kind, path, "fuzz-node")).unwrap();
    StaticPod::parse(
        Path::new("/m/fuzz.yaml"),
        pod_with(0, "fuzz").as_bytes(),
        "node",
    )
    .unwrap();
}
