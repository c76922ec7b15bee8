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
#[path = "spec_tests.rs"]
mod tests;
