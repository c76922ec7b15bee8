//! What each static pod contains (kubeadm's `ComponentPod`, volumes, probes and resources;
//! reference §4), as plain data that the templates lay out.

use serde::Serialize;

use super::flags::{self, extra_value, Paths};
use crate::config::{bracket_host, Config, ControlPlaneComponent, HostPathMount, HostPathType};
use crate::host::HostRoot;

#[derive(Debug, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: value.into(),
    }
}

#[derive(Debug, Serialize)]
pub struct EnvEntry {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct ProbeSpec {
    /// `liveness`, `readiness` or `startup`.
    pub kind: &'static str,
    pub host: String,
    pub path: String,
    /// A port number, or the port name `probe-port` (Kubernetes ≥ 1.34).
    pub port: serde_json::Value,
    pub scheme: &'static str,
    pub initial_delay_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
    pub period_seconds: u32,
}

#[derive(Debug, Serialize)]
pub struct PortSpec {
    pub name: &'static str,
    pub container_port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeSpec {
    pub name: String,
    pub host_path: String,
    pub mount_path: String,
    pub path_type: &'static str,
    pub read_only: bool,
}

/// Everything a static pod template needs.
#[derive(Debug, Serialize)]
pub struct PodSpec {
    pub name: &'static str,
    pub labels: Vec<KeyValue>,
    pub annotations: Vec<KeyValue>,
    pub image: String,
    pub command: Vec<String>,
    pub env: Vec<EnvEntry>,
    pub probes: Vec<ProbeSpec>,
    pub ports: Vec<PortSpec>,
    pub requests: Vec<KeyValue>,
    pub volumes: Vec<VolumeSpec>,
}

/// The CA directories kubeadm mounts into the apiserver and controller-manager only when they
/// exist on the host (`caCertsExtraVolumePaths`, volumes.go).
pub const OPTIONAL_CA_DIRS: &[(&str, &str)] = &[
    ("etc-ca-certificates", "/etc/ca-certificates"),
    ("etc-pki-ca-trust", "/etc/pki/ca-trust"),
    ("etc-pki-tls-certs", "/etc/pki/tls/certs"),
    (
        "usr-local-share-ca-certificates",
        "/usr/local/share/ca-certificates",
    ),
    ("usr-share-ca-certificates", "/usr/share/ca-certificates"),
];

/// kubeadm's probe shapes (`createHTTPProbe`, reference §4.6).
struct Probe<'a> {
    host: &'a str,
    port: u16,
    scheme: &'static str,
}

fn probes(
    cfg: &Config,
    p: Probe,
    liveness: &str,
    readiness: Option<&str>,
    startup: &str,
) -> (Vec<ProbeSpec>, Vec<PortSpec>) {
    let named = cfg.kubernetes_version.at_least(1, 34, 0);
    let port = if named {
        serde_json::json!("probe-port")
    } else {
        serde_json::json!(p.port)
    };
    // The startup budget follows timeouts.controlPlaneComponentHealthCheck: ceil(timeout / 10s).
    let budget = cfg
        .init
        .timeouts
        .control_plane_component_health_check
        .0
        .as_secs();
    let startup_threshold = budget.div_ceil(10).max(1) as u32;
    let spec = |kind, path: &str, delay, threshold, period| ProbeSpec {
        kind,
        host: p.host.to_string(),
        path: path.to_string(),
        port: port.clone(),
        scheme: p.scheme,
        initial_delay_seconds: delay,
        timeout_seconds: 15,
        failure_threshold: threshold,
        period_seconds: period,
    };
    let mut list = vec![spec("liveness", liveness, 10, 8, 10)];
    if let Some(path) = readiness {
        list.push(spec("readiness", path, 0, 3, 1));
    }
    list.push(spec("startup", startup, 10, startup_threshold, 10));
    let ports = if named {
        vec![PortSpec {
            name: "probe-port",
            container_port: p.port,
        }]
    } else {
        vec![]
    };
    (list, ports)
}

fn volume(name: &str, path: &str, path_type: HostPathType, read_only: bool) -> VolumeSpec {
    VolumeSpec {
        name: name.into(),
        host_path: path.into(),
        mount_path: path.into(),
        path_type: path_type.as_str(),
        read_only,
    }
}

/// Defaults, then `extraVolumes` replacing defaults of the same name, sorted by name.
fn merge_volumes(mut defaults: Vec<VolumeSpec>, extra: &[HostPathMount]) -> Vec<VolumeSpec> {
    defaults.retain(|d| !extra.iter().any(|e| e.name == d.name));
    defaults.extend(extra.iter().map(|e| VolumeSpec {
        name: e.name.clone(),
        host_path: e.host_path.clone(),
        mount_path: e.mount_path.clone(),
        path_type: e.path_type.unwrap_or(HostPathType::Unset).as_str(),
        read_only: e.read_only,
    }));
    defaults.sort_by(|a, b| a.name.cmp(&b.name));
    defaults
}

/// The proxy variables of the host merged with `extraEnvs` (which win), sorted by name.
fn env(cfg: &Config, extra: &ControlPlaneComponent) -> Vec<EnvEntry> {
    let mut env: Vec<EnvEntry> = cfg
        .host
        .proxy_env
        .iter()
        .filter(|(name, _)| !extra.extra_envs.iter().any(|e| &e.name == name))
        .map(|(name, value)| EnvEntry {
            name: name.clone(),
            value: value.clone(),
        })
        .collect();
    env.extend(extra.extra_envs.iter().map(|e| EnvEntry {
        name: e.name.clone(),
        value: e.value.clone(),
    }));
    env.sort_by(|a, b| a.name.cmp(&b.name));
    env
}

fn ca_volumes(cfg: &Config, paths: &Paths) -> Vec<VolumeSpec> {
    let mut volumes = vec![
        volume(
            "ca-certs",
            "/etc/ssl/certs",
            HostPathType::DirectoryOrCreate,
            true,
        ),
        volume(
            "k8s-certs",
            &paths.cert_dir,
            HostPathType::DirectoryOrCreate,
            true,
        ),
    ];
    for (name, dir) in OPTIONAL_CA_DIRS {
        if cfg.host.existing_ca_dirs.iter().any(|d| d == dir) {
            volumes.push(volume(name, dir, HostPathType::DirectoryOrCreate, true));
        }
    }
    volumes
}

fn labels(component: &str) -> Vec<KeyValue> {
    vec![kv("component", component), kv("tier", "control-plane")]
}

/// The probe host for controller-manager and scheduler: their bind-address, empty (the pod IP)
/// when that is a wildcard (reference §4.6 footnote).
fn local_probe_host(extra: &ControlPlaneComponent) -> String {
    match extra_value(&extra.extra_args, "bind-address") {
        Some("0.0.0.0" | "::") => String::new(),
        Some(address) => address.to_string(),
        None => "127.0.0.1".to_string(),
    }
}

fn secure_port(extra: &ControlPlaneComponent, default: u16) -> u16 {
    extra_value(&extra.extra_args, "secure-port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

pub fn kube_apiserver(cfg: &Config, root: &HostRoot) -> PodSpec {
    let paths = Paths::new(cfg, root);
    let component = cfg.cluster.api_server.component();
    let mut volumes = ca_volumes(cfg, &paths);
    if let Some(external) = &cfg.cluster.etcd.external {
        // The directories of the external etcd's files, unless already mounted.
        let mut index = 0;
        for file in [&external.ca_file, &external.cert_file, &external.key_file] {
            let Some(dir) = std::path::Path::new(file)
                .parent()
                .map(|d| d.display().to_string())
            else {
                continue;
            };
            if file.is_empty() || volumes.iter().any(|v| dir.starts_with(&v.host_path)) {
                continue;
            }
            volumes.push(volume(
                &format!("etcd-certs-{index}"),
                &dir,
                HostPathType::DirectoryOrCreate,
                true,
            ));
            index += 1;
        }
    }
    let address = cfg.advertise_address.to_string();
    let host_port = format!("{}:{}", bracket_host(&address), cfg.bind_port());
    let (probes, ports) = probes(
        cfg,
        Probe {
            host: &address,
            port: cfg.bind_port(),
            scheme: "HTTPS",
        },
        "/livez",
        Some("/readyz"),
        "/livez",
    );
    PodSpec {
        name: "kube-apiserver",
        labels: labels("kube-apiserver"),
        annotations: vec![kv(
            "kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint",
            host_port,
        )],
        image: cfg.component_image("kube-apiserver"),
        command: flags::command(
            "kube-apiserver",
            flags::kube_apiserver(cfg, &paths),
            &component.extra_args,
        ),
        env: env(cfg, &component),
        probes,
        ports,
        requests: vec![kv("cpu", "250m")],
        volumes: merge_volumes(volumes, &component.extra_volumes),
    }
}

pub fn kube_controller_manager(cfg: &Config, root: &HostRoot, external_ca: bool) -> PodSpec {
    let paths = Paths::new(cfg, root);
    let component = &cfg.cluster.controller_manager;
    let mut volumes = ca_volumes(cfg, &paths);
    let kubeconfig = root
        .path("/etc/kubernetes/controller-manager.conf")
        .display()
        .to_string();
    volumes.push(volume(
        "kubeconfig",
        &kubeconfig,
        HostPathType::FileOrCreate,
        true,
    ));
    let flex = extra_value(&component.extra_args, "flex-volume-plugin-dir")
        .map(str::to_string)
        .unwrap_or_else(|| {
            root.path("/usr/libexec/kubernetes/kubelet-plugins/volume/exec")
                .display()
                .to_string()
        });
    volumes.push(volume(
        "flexvolume-dir",
        &flex,
        HostPathType::DirectoryOrCreate,
        false,
    ));
    let host = local_probe_host(component);
    let port = secure_port(component, 10257);
    let (probes, ports) = probes(
        cfg,
        Probe {
            host: &host,
            port,
            scheme: "HTTPS",
        },
        "/healthz",
        None,
        "/healthz",
    );
    PodSpec {
        name: "kube-controller-manager",
        labels: labels("kube-controller-manager"),
        annotations: vec![],
        image: cfg.component_image("kube-controller-manager"),
        command: flags::command(
            "kube-controller-manager",
            flags::kube_controller_manager(cfg, &paths, external_ca),
            &component.extra_args,
        ),
        env: env(cfg, component),
        probes,
        ports,
        requests: vec![kv("cpu", "200m")],
        volumes: merge_volumes(volumes, &component.extra_volumes),
    }
}

pub fn kube_scheduler(cfg: &Config, root: &HostRoot) -> PodSpec {
    let paths = Paths::new(cfg, root);
    let component = &cfg.cluster.scheduler;
    let kubeconfig = root
        .path("/etc/kubernetes/scheduler.conf")
        .display()
        .to_string();
    let volumes = vec![volume(
        "kubeconfig",
        &kubeconfig,
        HostPathType::FileOrCreate,
        true,
    )];
    let host = local_probe_host(component);
    let probe = Probe {
        host: &host,
        port: secure_port(component, 10259),
        scheme: "HTTPS",
    };
    // /livez and /readyz from 1.32 (k/k#126945); /healthz before, without readiness.
    let (probes, ports) = if cfg.kubernetes_version.at_least(1, 32, 0) {
        probes(cfg, probe, "/livez", Some("/readyz"), "/livez")
    } else {
        probes(cfg, probe, "/healthz", None, "/healthz")
    };
    PodSpec {
        name: "kube-scheduler",
        labels: labels("kube-scheduler"),
        annotations: vec![],
        image: cfg.component_image("kube-scheduler"),
        command: flags::command(
            "kube-scheduler",
            flags::kube_scheduler(&paths),
            &component.extra_args,
        ),
        env: env(cfg, component),
        probes,
        ports,
        requests: vec![kv("cpu", "100m")],
        volumes: merge_volumes(volumes, &component.extra_volumes),
    }
}

/// The etcd pod, or `None` with external etcd.
pub fn etcd(cfg: &Config, root: &HostRoot) -> Option<PodSpec> {
    let local = cfg.local_etcd()?;
    let paths = Paths::new(cfg, root);
    let data_dir = root.path(&local.data_dir).display().to_string();
    let command = flags::command(
        "etcd",
        flags::etcd(cfg, &paths, &data_dir),
        &local.extra_args,
    );
    let volumes = vec![
        volume(
            "etcd-certs",
            &format!("{}/etcd", paths.cert_dir),
            HostPathType::DirectoryOrCreate,
            false,
        ),
        volume(
            "etcd-data",
            &data_dir,
            HostPathType::DirectoryOrCreate,
            false,
        ),
    ];
    // The probe target is the first listen-metrics-urls entry (kubeadm's getEtcdProbeEndpoint).
    let metrics = command
        .iter()
        .find_map(|a| a.strip_prefix("--listen-metrics-urls="))
        .unwrap_or("http://127.0.0.1:2381");
    let (host, port) = metrics_host_port(metrics);
    let probe = Probe {
        host: &host,
        port,
        scheme: if metrics.starts_with("https") {
            "HTTPS"
        } else {
            "HTTP"
        },
    };
    // /livez and /readyz exist from etcd 3.5.11 (k/k#124465); older etcd only has /health.
    let (probes, ports) = if cfg.etcd_version.at_least(3, 5, 11) {
        probes(cfg, probe, "/livez", Some("/readyz"), "/readyz")
    } else {
        probes(
            cfg,
            probe,
            "/health?exclude=NOSPACE&serializable=true",
            None,
            "/health?serializable=false",
        )
    };
    let address = bracket_host(&cfg.advertise_address.to_string());
    Some(PodSpec {
        name: "etcd",
        labels: labels("etcd"),
        annotations: vec![kv(
            "kubeadm.kubernetes.io/etcd.advertise-client-urls",
            format!("https://{address}:2379"),
        )],
        image: cfg.etcd_image(),
        command,
        env: env(
            cfg,
            &ControlPlaneComponent {
                extra_envs: local.extra_envs.clone(),
                ..Default::default()
            },
        ),
        probes,
        ports,
        requests: vec![kv("cpu", "100m"), kv("memory", "100Mi")],
        volumes,
    })
}

/// `http://[::1]:2381,…` → (`::1`, 2381).
fn metrics_host_port(urls: &str) -> (String, u16) {
    let first = urls.split(',').next().unwrap_or_default();
    let authority = first
        .split("://")
        .nth(1)
        .unwrap_or(first)
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (h, p.parse().unwrap_or(2381)),
        _ => (authority, 2381),
    };
    (
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_urls_give_probe_host_and_port() {
        assert_eq!(
            metrics_host_port("http://127.0.0.1:2381"),
            ("127.0.0.1".into(), 2381)
        );
        assert_eq!(
            metrics_host_port("http://[::1]:2382,http://x:1"),
            ("::1".into(), 2382)
        );
    }
}
