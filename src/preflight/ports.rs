//! The TCP ports the control plane will listen on, derived from the configuration the way the
//! rendered flags set them: the API server's bindPort, the controller-manager's and scheduler's
//! secure ports, local etcd's client, peer and metrics ports, and the agent's status port. Pure.

use crate::config::{extra_value, Arg, Config};

/// `KubeControllerManagerPort` (kubeadm `constants.go`).
pub const CONTROLLER_MANAGER_PORT: u16 = 10257;
/// `KubeSchedulerPort` (kubeadm `constants.go`).
pub const SCHEDULER_PORT: u16 = 10259;
/// `EtcdListenClientPort` (kubeadm `constants.go`).
pub const ETCD_CLIENT_PORT: u16 = 2379;
/// `EtcdListenPeerPort` (kubeadm `constants.go`).
pub const ETCD_PEER_PORT: u16 = 2380;
/// `EtcdMetricsPort` (kubeadm `constants.go`; `--listen-metrics-urls=http://127.0.0.1:2381`).
pub const ETCD_METRICS_PORT: u16 = 2381;
/// The kubelet's `healthzPort`, which the agent's status endpoint stands in for.
pub const AGENT_STATUS_PORT: u16 = 10248;

/// `(component, port)` for every port the control plane listens on, in kubeadm's check order
/// (bindPort, scheduler, controller-manager, then etcd), each port once.
pub fn component_ports(cfg: &Config) -> Vec<(String, u16)> {
    let mut ports: Vec<(&str, u16)> = Vec::new();
    let api = &cfg.cluster.api_server.extra_args;
    ports.push(("kube-apiserver", secure_port(api, cfg.bind_port())));
    ports.push((
        "kube-scheduler",
        secure_port(&cfg.cluster.scheduler.extra_args, SCHEDULER_PORT),
    ));
    ports.push((
        "kube-controller-manager",
        secure_port(
            &cfg.cluster.controller_manager.extra_args,
            CONTROLLER_MANAGER_PORT,
        ),
    ));
    if let Some(local) = cfg.local_etcd() {
        for (flag, default) in [
            ("listen-client-urls", ETCD_CLIENT_PORT),
            ("listen-peer-urls", ETCD_PEER_PORT),
            ("listen-metrics-urls", ETCD_METRICS_PORT),
        ] {
            match extra_value(&local.extra_args, flag) {
                Some(urls) => ports.extend(url_ports(urls).into_iter().map(|p| ("etcd", p))),
                None => ports.push(("etcd", default)),
            }
        }
    }
    ports.push((
        "boot-agent",
        address_port(&cfg.boot.agent.status_address).unwrap_or(AGENT_STATUS_PORT),
    ));

    let mut seen = Vec::new();
    ports
        .into_iter()
        .filter(|(_, port)| {
            let new = !seen.contains(port);
            seen.push(*port);
            new
        })
        .map(|(component, port)| (component.to_string(), port))
        .collect()
}

/// The component's `--secure-port` from extraArgs, else its default.
fn secure_port(extra: &[Arg], default: u16) -> u16 {
    extra_value(extra, "secure-port")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(default)
}

/// The ports of a comma-separated URL list such as
/// `https://127.0.0.1:2379,https://[fd00::1]:2379`; `unix://` URLs listen on no port.
pub fn url_ports(urls: &str) -> Vec<u16> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty() && !url.starts_with("unix"))
        .filter_map(|url| {
            let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
            let authority = rest.split('/').next().unwrap_or(rest);
            address_port(authority)
        })
        .collect()
}

/// The port of `host:port` or `[v6]:port`.
fn address_port(address: &str) -> Option<u16> {
    let (host, port) = address.rsplit_once(':')?;
    if host.contains(':') && !host.ends_with(']') {
        return None; // a bare IPv6 address without a port
    }
    port.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preflight::plan_tests::cfg;

    fn ports(cfg: &Config) -> Vec<u16> {
        component_ports(cfg).into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn defaults_are_kubeadms_ports_plus_the_agent() {
        let cfg = cfg("");
        assert_eq!(
            component_ports(&cfg),
            [
                ("kube-apiserver", 6443),
                ("kube-scheduler", 10259),
                ("kube-controller-manager", 10257),
                ("etcd", 2379),
                ("etcd", 2380),
                ("etcd", 2381),
                ("boot-agent", 10248),
            ]
            .map(|(c, p)| (c.to_string(), p))
        );
    }

    #[test]
    fn overrides_come_from_the_configuration() {
        let cfg = cfg(r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  bindPort: 16443
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
scheduler:
  extraArgs:
  - name: secure-port
    value: "20259"
controllerManager:
  extraArgs:
  - name: secure-port
    value: "20257"
etcd:
  local:
    extraArgs:
    - name: listen-client-urls
      value: https://127.0.0.1:22379,https://10.0.0.1:22379
    - name: listen-peer-urls
      value: https://10.0.0.1:22380
    - name: listen-metrics-urls
      value: http://[::1]:22381/metrics
---
apiVersion: boot/v1alpha1
kind: BootConfiguration
agent:
  statusAddress: 127.0.0.1:20248
"#);
        assert_eq!(
            ports(&cfg),
            [16443, 20259, 20257, 22379, 22380, 22381, 20248]
        );
    }

    #[test]
    fn external_etcd_has_no_etcd_ports() {
        let cfg = cfg(r#"
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
etcd:
  external:
    endpoints: [https://10.0.0.2:2379]
"#);
        assert_eq!(ports(&cfg), [6443, 10259, 10257, 10248]);
    }

    #[test]
    fn url_lists_parse() {
        assert_eq!(
            url_ports("https://127.0.0.1:2379, https://[fd00::1]:2379,unix://sock"),
            [2379, 2379]
        );
        assert_eq!(url_ports("https://host"), Vec::<u16>::new());
        assert_eq!(address_port("fd00::1"), None);
        assert_eq!(address_port("[fd00::1]:10248"), Some(10248));
    }
}
