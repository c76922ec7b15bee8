//! The probes kubeadm gives the control-plane pods (`createHTTPProbe`, reference §4.6) and the
//! named `probe-port` of Kubernetes 1.34+.

use serde::Serialize;

use super::flags::extra_value;
use crate::config::{Config, ControlPlaneComponent};

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

/// kubeadm's probe shapes (`createHTTPProbe`, reference §4.6).
pub struct Probe<'a> {
    pub host: &'a str,
    pub port: u16,
    pub scheme: &'static str,
}

pub fn probes(
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

/// The probe host for controller-manager and scheduler: their bind-address, empty (the pod IP)
/// when that is a wildcard (reference §4.6 footnote).
pub fn local_probe_host(extra: &ControlPlaneComponent) -> String {
    match extra_value(&extra.extra_args, "bind-address") {
        Some("0.0.0.0" | "::") => String::new(),
        Some(address) => address.to_string(),
        None => "127.0.0.1".to_string(),
    }
}

pub fn secure_port(extra: &ControlPlaneComponent, default: u16) -> u16 {
    extra_value(&extra.extra_args, "secure-port")
        .and_then(|p| p.parse().ok())
        .unwrap_or(default)
}

/// `http://[::1]:2381,…` → (`::1`, 2381).
pub fn metrics_host_port(urls: &str) -> (String, u16) {
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
