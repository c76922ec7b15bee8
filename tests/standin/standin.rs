//! `boot-standin`: a test helper that stands in for kube-apiserver, kube-controller-manager
//! and kube-scheduler, which cannot be downloaded here (design §7). Integration tests put
//! symlinks with the components' names pointing at this binary into a bin directory; the
//! basename of argv[0] picks the behaviour:
//!
//! - `kube-apiserver`: accepts the real flags, serves `/livez`, `/readyz`, `/healthz`,
//!   `/version`, discovery and ClusterRoleBindings/ConfigMaps over TLS with the manifest's
//!   certs, verifies client certs against `--client-ca-file`, and writes
//!   `/registry/boot-standin/kube-apiserver` to the first `--etcd-servers` over mTLS at start
//!   and on every `/readyz`/`/healthz` (500 `[-]etcd failed: …` while etcd is unreachable).
//!   `BOOT_STANDIN_RECORD=FILE` appends every API request there as a JSON line.
//! - `kube-controller-manager` (port 10257), `kube-scheduler` (10259): check their
//!   kubeconfigs, then serve the health endpoints over TLS (self-signed unless given certs).
//! - anything else: generic mode, `--listen=HOST:PORT` accepts and closes TCP connections,
//!   `--http` answers the health endpoints over plain HTTP instead.
//!
//! An unknown flag exits 1 with `Error: unknown flag: --foo`; `--version` prints
//! `Kubernetes v1.36.2` (or `$BOOT_STANDIN_VERSION`). SIGTERM exits 0 promptly.
//!
//! Faults: words in `BOOT_STANDIN_FAULTS` (read at start) and in the file named by
//! `BOOT_STANDIN_CONTROL` (re-read on every request and every 100 ms, so a test can flip a
//! running process): `crash-after=MS` (exit 1 with a message once up that long),
//! `exit=CODE` (exit now), `hang` (at start: never listen; later: never answer),
//! `ignore-sigterm`, `fail-livez`, `fail-readyz`, `fail-healthz` (that endpoint answers 500),
//! `slow-start=MS` (listen only after that delay), `rbac` (kube-apiserver: 403 Forbidden for
//! API calls of users outside `system:masters` until a ClusterRoleBinding to `cluster-admin`
//! names them).

mod apiserver;
mod components;
mod etcd;
mod faults;
mod flags;
mod health;
mod http;
mod kubeconfig;
mod store;
mod tls;

use std::sync::{Arc, OnceLock};

use tokio::signal::unix::{signal, SignalKind};

use faults::FaultSource;
use flags::{Component, Flags, Invocation};

/// The version `--version` and `/version` report unless `BOOT_STANDIN_VERSION` overrides it.
const DEFAULT_VERSION: &str = "v1.36.2";
const VERSION_ENV: &str = "BOOT_STANDIN_VERSION";

static COMPONENT: OnceLock<&'static str> = OnceLock::new();

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    let component = Component::from_argv0(argv.first().map(String::as_str).unwrap_or_default());
    let _ = COMPONENT.set(component.name());
    let flags = match flags::parse(component, argv.get(1..).unwrap_or_default()) {
        Ok(Invocation::Run(flags)) => flags,
        Ok(Invocation::Version) => {
            println!("Kubernetes {}", version());
            std::process::exit(0);
        }
        Ok(Invocation::Help) => {
            println!(
                "{} (boot-standin test helper)\n\nSee the doc comment of tests/standin/standin.rs.",
                component.name()
            );
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("Error: {e}");
            eprintln!("Run '{} --help' for usage.", component.name());
            std::process::exit(1);
        }
    };
    let faults = match FaultSource::from_env() {
        Ok(faults) => Arc::new(faults),
        Err(e) => fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => fail(&format!("tokio runtime: {e}")),
    };
    let code = runtime.block_on(run(component, flags, faults));
    std::process::exit(code);
}

fn fail(message: &str) -> ! {
    eprintln!("Error: {message}");
    std::process::exit(1);
}

/// Runs the component until it fails (exit 1) or is told to stop (exit 0).
async fn run(component: Component, flags: Flags, faults: Arc<FaultSource>) -> i32 {
    println!(
        "{} (boot-standin) {} pid {}",
        component.name(),
        version(),
        std::process::id()
    );
    let initial = faults.current();
    faults::exit_if_told(&initial, faults.uptime());
    tokio::spawn(faults::watchdog(faults.clone()));
    let (mut sigterm, mut sigint) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(e), _) | (_, Err(e)) => fail(&format!("installing signal handlers: {e}")),
    };
    let serve = async {
        if let Some(delay) = initial.slow_start {
            log(&format!(
                "slow start: listening in {} ms",
                delay.as_millis()
            ));
            tokio::time::sleep(delay).await;
        }
        if initial.hang {
            log("hang: never listening");
            std::future::pending::<()>().await;
        }
        match component {
            Component::ApiServer => apiserver::run(flags, faults.clone()).await,
            Component::ControllerManager | Component::Scheduler => {
                components::run_client_component(component, flags, faults.clone()).await
            }
            Component::Generic => components::run_generic(flags, faults.clone()).await,
        }
    };
    tokio::pin!(serve);
    loop {
        tokio::select! {
            result = &mut serve => return match result {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("Error: {e}");
                    1
                }
            },
            _ = sigterm.recv() => {
                if faults.current().ignore_sigterm {
                    log("received SIGTERM, ignoring it as told by ignore-sigterm");
                } else {
                    log("received SIGTERM, shutting down");
                    return 0;
                }
            }
            _ = sigint.recv() => {
                log("received SIGINT, shutting down");
                return 0;
            }
        }
    }
}

fn version() -> String {
    std::env::var(VERSION_ENV).unwrap_or_else(|_| DEFAULT_VERSION.to_string())
}

/// One klog-style line on stderr: `I0102 15:04:05.000000 <pid> <component>] message`.
pub fn log(message: &str) {
    let now = time::OffsetDateTime::now_utc();
    eprintln!(
        "I{:02}{:02} {:02}:{:02}:{:02}.{:06} {:>7} {}] {message}",
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        now.microsecond(),
        std::process::id(),
        COMPONENT.get().copied().unwrap_or("boot-standin"),
    );
}

/// `host:port`, with IPv6 hosts bracketed.
pub fn host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Binds `host:port` with the error the real components print.
pub async fn bind(host: &str, port: &str) -> Result<tokio::net::TcpListener, String> {
    let address = host_port(host, port);
    let port: u16 = port
        .parse()
        .map_err(|_| format!("--secure-port: invalid port {port:?}"))?;
    tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| format!("failed to listen on {address}: listen tcp {address}: bind: {e}"))
}
