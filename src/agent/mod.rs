//! The static pod agent (design §5): a small kubelet for static pods only. It watches the
//! manifest directory ([`source`]), runs each pod's containers through a
//! [`Runtime`](crate::runtime::Runtime), probes them, restarts them with CrashLoopBackOff
//! ([`backoff`]), serves its status ([`status`], [`server`]) and survives its own restarts by
//! adopting the processes it recorded ([`records`]). [`run`] is the whole agent; `boot agent`
//! and tests call it.
//!
//! Touches: the manifest directory, `<root>/run/boot/` (socket, netns), `<root>/var/lib/boot/agent/`
//! (records), `<root>/var/log/pods/`, `/sys/fs/cgroup`.

pub mod backoff;
pub mod images;
pub mod options;
pub mod pod;
pub mod records;
pub mod server;
pub mod source;
pub mod status;
pub mod supervisor;

pub use backoff::BackoffSettings;
pub use options::AgentOptions;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::runtime::process::{ProcessRuntime, ProcessSettings};
use crate::runtime::Runtime;
use supervisor::{Context, Supervisor};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("another agent is already running: it answers on {socket}")]
    AlreadyRunning { socket: PathBuf },
    #[error("cannot listen on the status socket {socket}: {source}")]
    Socket { socket: PathBuf, source: io::Error },
    #[error("cannot listen on {addr} for /healthz: {source}")]
    Healthz { addr: SocketAddr, source: io::Error },
    #[error("cannot create {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("the image store: {0}")]
    Images(#[source] crate::image::ImageError),
}

/// Runs the agent with the process runtime until `shutdown` resolves.
pub async fn run(
    options: AgentOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let runtime = ProcessRuntime::new(ProcessSettings {
        bin_dirs: options.bin_dirs.clone(),
        hostname: options.node_name.clone(),
        netns_dir: options.netns_dir.clone(),
        pods_dir: options.state_dir.join("pods"),
        relay_exe: options.relay_exe.clone(),
        log_max_size: options.log_max_size,
        log_max_files: options.log_max_files,
        cgroup_parent: options.cgroup_parent.clone(),
    });
    run_with_runtime(options, Arc::new(runtime), shutdown).await
}

/// Runs the agent with any runtime until `shutdown` resolves.
pub async fn run_with_runtime(
    options: AgentOptions,
    runtime: Arc<dyn Runtime>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    for dir in [options.records_dir(), options.log_dir.clone()] {
        std::fs::create_dir_all(&dir).map_err(|source| AgentError::CreateDir {
            path: dir.clone(),
            source,
        })?;
    }
    let unix = bind_socket(&options.status_socket)?;
    let tcp = match options.status_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AgentError::Healthz { addr, source })?,
        ),
        None => None,
    };
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let unix_server = tokio::spawn(server::serve_unix(unix, events_tx.clone()));
    let tcp_server =
        tcp.map(|listener| tokio::spawn(server::serve_tcp(listener, events_tx.clone())));
    let socket = options.status_socket.clone();
    let images = if runtime.needs_images() {
        Some(images::gate(&options).map_err(AgentError::Images)?)
    } else {
        None
    };
    let ctx = Context {
        options,
        runtime,
        events: events_tx,
        started_at: SystemTime::now(),
        images,
    };
    ctx.note(format!(
        "watching {} as node {} (status on {})",
        ctx.options.manifest_dir.display(),
        ctx.options.node_name,
        socket.display()
    ));
    Supervisor::new(ctx).run(events_rx, shutdown).await;
    unix_server.abort();
    if let Some(server) = tcp_server {
        server.abort();
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Binds the status socket, replacing a stale one but refusing when an agent answers on it.
fn bind_socket(socket: &std::path::Path) -> Result<tokio::net::UnixListener, AgentError> {
    let err = |source| AgentError::Socket {
        socket: socket.to_path_buf(),
        source,
    };
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(socket).is_ok() {
            return Err(AgentError::AlreadyRunning {
                socket: socket.to_path_buf(),
            });
        }
        std::fs::remove_file(socket).map_err(err)?;
    }
    tokio::net::UnixListener::bind(socket).map_err(err)
}
