//! What a container's probe does and how often, read from its `k8s-openapi` [`Probe`] with the
//! API server's defaulting (`SetDefaults_Probe`, `SetDefaults_HTTPGetAction`) and the kubelet's
//! port resolution (`extractPort` / `findPortByName` in `pkg/kubelet/prober`). Pure.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// `SetDefaults_Probe`: `timeoutSeconds` defaults to 1.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// `SetDefaults_Probe`: `periodSeconds` defaults to 10.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);
/// `SetDefaults_Probe`: `successThreshold` defaults to 1.
pub const DEFAULT_SUCCESS_THRESHOLD: u32 = 1;
/// `SetDefaults_Probe`: `failureThreshold` defaults to 3.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;

/// The URL scheme of an `httpGet` probe (`URIScheme`: `HTTP` or `HTTPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// The lower-case name used in URLs and in the kubelet's messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One probe's handler, with every port resolved and every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeAction {
    HttpGet {
        scheme: Scheme,
        host: String,
        port: u16,
        /// The request target, path and query as written in the manifest; always starts with `/`.
        path: String,
        headers: Vec<(String, String)>,
    },
    TcpSocket {
        host: String,
        port: u16,
    },
    Exec {
        command: Vec<String>,
    },
    Grpc {
        host: String,
        port: u16,
        service: Option<String>,
    },
}

/// A probe the agent cannot run; each variant names the container and the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeSpecError {
    #[error("container {container}: probe has no handler (one of exec, httpGet, tcpSocket, grpc)")]
    NoHandler { container: String },
    #[error("container {container}: probe may specify only one handler, found {found}")]
    MultipleHandlers { container: String, found: String },
    #[error("container {container}: {field}: port {port} not found in the container's ports")]
    PortNotFound {
        container: String,
        field: &'static str,
        port: String,
    },
    #[error("container {container}: {field}: invalid port number {port}")]
    InvalidPort {
        container: String,
        field: &'static str,
        port: String,
    },
    #[error(
        "container {container}: httpGet.scheme: unsupported scheme {scheme:?} (HTTP or HTTPS)"
    )]
    UnknownScheme { container: String, scheme: String },
    #[error("container {container}: exec.command is empty")]
    EmptyCommand { container: String },
}

impl ProbeAction {
    /// Reads the handler of `probe`, a probe of `container`: resolves named ports against
    /// `container.ports`, defaults the host to `default_host` (the node address under
    /// hostNetwork, as the kubelet uses the pod IP), the scheme to HTTP and the path to `/`.
    pub fn from_probe(
        probe: &Probe,
        container: &Container,
        default_host: &str,
    ) -> Result<ProbeAction, ProbeSpecError> {
        let name = || container.name.clone();
        let handlers: Vec<&str> = [
            probe.exec.as_ref().map(|_| "exec"),
            probe.http_get.as_ref().map(|_| "httpGet"),
            probe.tcp_socket.as_ref().map(|_| "tcpSocket"),
            probe.grpc.as_ref().map(|_| "grpc"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if handlers.len() > 1 {
            return Err(ProbeSpecError::MultipleHandlers {
                container: name(),
                found: handlers.join(", "),
            });
        }
        let host_or_default = |host: &Option<String>| match host.as_deref() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => default_host.to_string(),
        };
        if let Some(http) = &probe.http_get {
            let scheme = match http.scheme.as_deref().unwrap_or("") {
                "" | "HTTP" | "http" => Scheme::Http,
                "HTTPS" | "https" => Scheme::Https,
                other => {
                    return Err(ProbeSpecError::UnknownScheme {
                        container: name(),
                        scheme: other.into(),
                    })
                }
            };
            let path = match http.path.as_deref().unwrap_or("") {
                "" => "/".to_string(),
                p if p.starts_with('/') => p.to_string(),
                // The kubelet joins the path onto the URL, which adds the leading slash.
                p => format!("/{p}"),
            };
            let headers = http
                .http_headers
                .iter()
                .flatten()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect();
            return Ok(ProbeAction::HttpGet {
                scheme,
                host: host_or_default(&http.host),
                port: resolve_port(&http.port, container, "httpGet.port")?,
                path,
                headers,
            });
        }
        if let Some(tcp) = &probe.tcp_socket {
            return Ok(ProbeAction::TcpSocket {
                host: host_or_default(&tcp.host),
                port: resolve_port(&tcp.port, container, "tcpSocket.port")?,
            });
        }
        if let Some(exec) = &probe.exec {
            let command = exec.command.clone().unwrap_or_default();
            if command.is_empty() {
                return Err(ProbeSpecError::EmptyCommand { container: name() });
            }
            return Ok(ProbeAction::Exec { command });
        }
        if let Some(grpc) = &probe.grpc {
            let port = u16::try_from(grpc.port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| ProbeSpecError::InvalidPort {
                    container: name(),
                    field: "grpc.port",
                    port: grpc.port.to_string(),
                })?;
            // The kubelet's gRPC probe always dials the pod IP; the API has no host field.
            return Ok(ProbeAction::Grpc {
                host: default_host.to_string(),
                port,
                service: grpc.service.clone(),
            });
        }
        Err(ProbeSpecError::NoHandler { container: name() })
    }
}

/// The kubelet's `extractPort`: a number, or a name looked up in `container.ports`, or as a last
/// resort a number written as a string; it must lie in 1..=65535.
fn resolve_port(
    port: &IntOrString,
    container: &Container,
    field: &'static str,
) -> Result<u16, ProbeSpecError> {
    let number = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let by_name = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port));
            match by_name.or_else(|| name.parse::<i64>().ok()) {
                Some(n) => n,
                None => {
                    return Err(ProbeSpecError::PortNotFound {
                        container: container.name.clone(),
                        field,
                        port: name.clone(),
                    })
                }
            }
        }
    };
    u16::try_from(number)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| ProbeSpecError::InvalidPort {
            container: container.name.clone(),
            field,
            port: number.to_string(),
        })
}

/// How often and how patiently a probe runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe-level `terminationGracePeriodSeconds`, which replaces the pod's grace period
    /// when a liveness or startup failure kills the container.
    pub termination_grace_period: Option<Duration>,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        ProbeSettings {
            initial_delay: Duration::ZERO,
            period: DEFAULT_PERIOD,
            timeout: DEFAULT_TIMEOUT,
            success_threshold: DEFAULT_SUCCESS_THRESHOLD,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            termination_grace_period: None,
        }
    }
}

impl ProbeSettings {
    /// The API defaults for unset (or zero) fields; the API validation rejects negative values,
    /// which are read here as unset rather than refused, so a probe always has period and
    /// timeout of at least 1s and thresholds of at least 1.
    pub fn from_probe(probe: &Probe) -> Self {
        let d = ProbeSettings::default();
        let secs = |v: Option<i32>, default: Duration| match v {
            Some(s) if s > 0 => Duration::from_secs(s as u64),
            _ => default,
        };
        let count = |v: Option<i32>, default: u32| match v {
            Some(n) if n > 0 => n as u32,
            _ => default,
        };
        ProbeSettings {
            initial_delay: secs(probe.initial_delay_seconds, Duration::ZERO),
            period: secs(probe.period_seconds, d.period),
            timeout: secs(probe.timeout_seconds, d.timeout),
            success_threshold: count(probe.success_threshold, d.success_threshold),
            failure_threshold: count(probe.failure_threshold, d.failure_threshold),
            termination_grace_period: probe
                .termination_grace_period_seconds
                .filter(|s| *s >= 0)
                .map(|s| Duration::from_secs(s as u64)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A container as kubeadm 1.34 writes kube-apiserver's, with `probe` as its liveness probe.
    fn container(probe: &str) -> (Container, Probe) {
        let yaml = format!(
            "name: kube-apiserver\nports:\n- name: probe-port\n  containerPort: 6443\n  protocol: TCP\nlivenessProbe:\n{}",
            probe.lines().map(|l| format!("  {l}\n")).collect::<String>()
        );
        let c: Container = serde_yaml::from_str(&yaml).unwrap();
        let p = c.liveness_probe.clone().unwrap();
        (c, p)
    }

    fn action(probe: &str) -> Result<ProbeAction, ProbeSpecError> {
        let (c, p) = container(probe);
        ProbeAction::from_probe(&p, &c, "10.0.0.5")
    }

    #[test]
    fn kubeadm_apiserver_probe() {
        let probe =
            "httpGet:\n  host: 192.168.1.10\n  path: /livez\n  port: probe-port\n  scheme: HTTPS";
        assert_eq!(
            action(probe),
            Ok(ProbeAction::HttpGet {
                scheme: Scheme::Https,
                host: "192.168.1.10".into(),
                port: 6443,
                path: "/livez".into(),
                headers: vec![],
            })
        );
    }

    #[test]
    fn http_defaults_host_scheme_and_path() {
        let probe = "httpGet:\n  port: 2381\n  httpHeaders:\n  - name: X-A\n    value: b";
        assert_eq!(
            action(probe),
            Ok(ProbeAction::HttpGet {
                scheme: Scheme::Http,
                host: "10.0.0.5".into(),
                port: 2381,
                path: "/".into(),
                headers: vec![("X-A".into(), "b".into())],
            })
        );
        let relative = action("httpGet:\n  port: 1\n  path: healthz").unwrap();
        assert!(matches!(relative, ProbeAction::HttpGet { path, .. } if path == "/healthz"));
    }

    #[test]
    fn missing_port_name_is_named_in_the_error() {
        let err = action("tcpSocket:\n  port: metrics").unwrap_err();
        assert_eq!(
            err,
            ProbeSpecError::PortNotFound {
                container: "kube-apiserver".into(),
                field: "tcpSocket.port",
                port: "metrics".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "container kube-apiserver: tcpSocket.port: port metrics not found in the container's ports"
        );
    }

    #[test]
    fn numeric_string_port_is_the_last_resort() {
        assert_eq!(
            action("tcpSocket:\n  port: \"8080\""),
            Ok(ProbeAction::TcpSocket {
                host: "10.0.0.5".into(),
                port: 8080
            })
        );
    }

    #[test]
    fn out_of_range_ports_are_refused() {
        for port in ["0", "70000", "-1"] {
            let err = action(&format!("tcpSocket:\n  port: {port}")).unwrap_err();
            assert!(
                matches!(err, ProbeSpecError::InvalidPort { .. }),
                "{port}: {err}"
            );
        }
        assert!(matches!(
            action("grpc:\n  port: 0"),
            Err(ProbeSpecError::InvalidPort {
                field: "grpc.port",
                ..
            })
        ));
    }

    #[test]
    fn exec_tcp_and_grpc() {
        assert_eq!(
            action("exec:\n  command: [etcdctl, endpoint, health]"),
            Ok(ProbeAction::Exec {
                command: vec!["etcdctl".into(), "endpoint".into(), "health".into()]
            })
        );
        assert!(matches!(
            action("exec:\n  command: []"),
            Err(ProbeSpecError::EmptyCommand { .. })
        ));
        assert_eq!(
            action("tcpSocket:\n  host: 127.0.0.1\n  port: probe-port"),
            Ok(ProbeAction::TcpSocket {
                host: "127.0.0.1".into(),
                port: 6443
            })
        );
        assert_eq!(
            action("grpc:\n  port: 2379\n  service: etcd"),
            Ok(ProbeAction::Grpc {
                host: "10.0.0.5".into(),
                port: 2379,
                service: Some("etcd".into())
            })
        );
    }

    #[test]
    fn handler_count_and_scheme_are_checked() {
        assert!(matches!(
            action("periodSeconds: 3"),
            Err(ProbeSpecError::NoHandler { .. })
        ));
        let two = action("tcpSocket:\n  port: 1\ngrpc:\n  port: 2").unwrap_err();
        assert_eq!(
            two.to_string(),
            "container kube-apiserver: probe may specify only one handler, found tcpSocket, grpc"
        );
        assert!(matches!(
            action("httpGet:\n  port: 1\n  scheme: FTP"),
            Err(ProbeSpecError::UnknownScheme { .. })
        ));
    }

    #[test]
    fn settings_defaults() {
        let (_, probe) = container("tcpSocket:\n  port: 1");
        assert_eq!(
            ProbeSettings::from_probe(&probe),
            ProbeSettings {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
                termination_grace_period: None,
            }
        );
        // Zero and negative values read as unset, so period and timeout are at least 1s.
        let (_, zeros) = container(
            "tcpSocket:\n  port: 1\nperiodSeconds: 0\ntimeoutSeconds: -2\nfailureThreshold: 0",
        );
        assert_eq!(ProbeSettings::from_probe(&zeros), ProbeSettings::default());
    }

    #[test]
    fn settings_of_kubeadms_liveness_probe() {
        let (_, probe) = container(
            "tcpSocket:\n  port: 1\ninitialDelaySeconds: 10\ntimeoutSeconds: 15\nfailureThreshold: 8\n\
             periodSeconds: 10\nterminationGracePeriodSeconds: 5",
        );
        assert_eq!(
            ProbeSettings::from_probe(&probe),
            ProbeSettings {
                initial_delay: Duration::from_secs(10),
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(15),
                success_threshold: 1,
                failure_threshold: 8,
                termination_grace_period: Some(Duration::from_secs(5)),
            }
        );
    }
}
