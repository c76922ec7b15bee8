//! The kube-controller-manager and kube-scheduler stand-ins (kubeconfig checks, then health
//! endpoints over TLS) and the generic mode used for many cheap pods in agent tests.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::faults::FaultSource;
use crate::flags::{Component, Flags};
use crate::health::{self, Check, Endpoint};
use crate::http::{Handler, Response};

/// kube-controller-manager's default `--secure-port` (ports.KubeControllerManagerPort).
const CONTROLLER_MANAGER_PORT: &str = "10257";
/// kube-scheduler's default `--secure-port` (ports.KubeSchedulerPort).
const SCHEDULER_PORT: &str = "10259";

/// Runs the controller-manager or the scheduler stand-in.
pub async fn run_client_component(
    component: Component,
    flags: Flags,
    faults: Arc<FaultSource>,
) -> Result<(), String> {
    for flag in [
        "kubeconfig",
        "authentication-kubeconfig",
        "authorization-kubeconfig",
    ] {
        if let Some(path) = flags.path(flag) {
            crate::kubeconfig::check(path)?;
        }
    }
    // The scheduler's --config (KubeSchedulerConfiguration) and the controller-manager's
    // signing files must at least exist.
    for flag in [
        "config",
        "cluster-signing-cert-file",
        "cluster-signing-key-file",
        "root-ca-file",
        "service-account-private-key-file",
    ] {
        if let Some(path) = flags.path(flag) {
            std::fs::metadata(path).map_err(|e| format!("--{flag}: stat {path}: {e}"))?;
        }
    }
    let default_port = match component {
        Component::ControllerManager => CONTROLLER_MANAGER_PORT,
        _ => SCHEDULER_PORT,
    };
    let bind = flags.path("bind-address").unwrap_or("0.0.0.0").to_string();
    let port = flags
        .path("secure-port")
        .unwrap_or(default_port)
        .to_string();
    let tls = crate::tls::from_flags(&flags, &bind)?;
    let listener = crate::bind(&bind, &port).await?;
    crate::log(&format!(
        "Serving securely on {}",
        crate::host_port(&bind, &port)
    ));
    let handler = health_handler(faults.clone(), component);
    crate::http::serve(listener, Some(TlsAcceptor::from(tls)), handler, faults).await
}

/// Generic mode: `--listen=HOST:PORT` accepts and closes TCP connections, or with `--http`
/// answers the health endpoints over plain HTTP.
pub async fn run_generic(flags: Flags, faults: Arc<FaultSource>) -> Result<(), String> {
    let listen = flags
        .path("listen")
        .ok_or("generic mode needs --listen=HOST:PORT")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("listen tcp {listen}: {e}"))?;
    crate::log(&format!("listening on {listen}"));
    if flags.is_true("http") {
        let handler = health_handler(faults.clone(), Component::Generic);
        return crate::http::serve(listener, None, handler, faults).await;
    }
    loop {
        let (stream, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        drop(stream);
    }
}

fn health_handler(faults: Arc<FaultSource>, component: Component) -> Handler {
    Arc::new(move |request| {
        let faults = faults.clone();
        Box::pin(async move {
            let Some(endpoint) = Endpoint::from_path(request.path()) else {
                return Response::text(404, "404 page not found\n");
            };
            let mut checks = vec![Check::ok("ping"), Check::ok("log")];
            if component != Component::Generic {
                checks.push(Check::ok("leaderElection"));
            }
            health::respond(&request, endpoint, checks, &faults.current())
        })
    })
}
