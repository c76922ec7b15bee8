//! What each static pod contains (kubeadm's `ComponentPod`, volumes, probes and resources;
//! reference §4), as plain data that the templates lay out.

use serde::Serialize;

use super::flags::{self, extra_value, Paths};
use super::probes::{
    local_probe_host, metrics_host_port, probes, secure_port, PortSpec, Probe, ProbeSpec,
};
use super::security;
use super::volumes::{ca_volumes, merge_volumes, volume, VolumeSpec};
use crate::config::{bracket_host, Config, ControlPlaneComponent, HostPathType};
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

fn labels(component: &str) -> Vec<KeyValue> {
    vec![kv("component", component), kv("tier", "control-plane")]
}

pub fn kube_apiserver(cfg: &Config, root: &HostRoot) -> PodSpec {
    let paths = Paths::new(cfg, root);
    let component = cfg.cluster.api_server.component();
    let mut volumes = ca_volumes(cfg, &paths);
    if let Some(external) = &cfg.cluster.etcd.external {
        // The directories of the external etcd's files, unless already mounted.
        let mut index = 0;
        for file in [&external.ca_file, &external.cert_file, &external.key_file] {
            let file = paths.host(file);
            let Some(dir) = std::path::Path::new(&file)
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
    let audit_log_dir = root.path(security::AUDIT_LOG_DIR).display().to_string();
    volumes.extend(security::apiserver_volumes(cfg, &paths, &audit_log_dir));
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
            [
                flags::kube_apiserver(cfg, &paths),
                security::apiserver_flags(cfg, &paths, &audit_log_dir),
            ]
            .concat(),
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
