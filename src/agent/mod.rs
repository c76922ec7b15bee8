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
pub mod gc;
pub mod images;
pub mod options;
pub mod pod;
pub mod published;
pub mod records;
pub mod server;
pub mod source;
pub mod status;
pub mod supervisor;
pub mod watch;

pub use backoff::BackoffSettings;
pub use options::AgentOptions;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::runtime::oci::image::ImageSource;
use crate::runtime::{self, Runtime, RuntimeKind};
use status::AgentStatus;
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

/// Runs the agent with the runtime its options name until `shutdown` resolves.
pub async fn run(
    options: AgentOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let images: Option<Arc<dyn ImageSource>> = match options.runtime {
        RuntimeKind::Process => None,
        RuntimeKind::Oci => Some(Arc::new(
            crate::image::Store::open(&options.root).map_err(AgentError::Images)?,
        )),
    };
    let runtime = runtime::open(options.runtime, &options.runtime_settings(), images);
    run_with_runtime(options, runtime, shutdown).await
}

/// Runs the agent with the OCI runtime, its images coming from `images`, until `shutdown`
/// resolves.
pub async fn run_with_images(
    options: AgentOptions,
    images: Arc<dyn ImageSource>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let mut options = options;
    options.runtime = RuntimeKind::Oci;
    let runtime = runtime::open(RuntimeKind::Oci, &options.runtime_settings(), Some(images));
    run_with_runtime(options, runtime, shutdown).await
}

/// Runs the agent with any runtime until `shutdown` resolves.
pub async fn run_with_runtime(
    options: AgentOptions,
    runtime: Arc<dyn Runtime>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    if let Err(e) = crate::host::limits::raise_open_files_limit() {
        eprintln!("[agent] warning: cannot raise the open-files limit: {e}");
    }
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
    // The agent's face in the API runs beside the supervisor and only reads what it publishes.
    let (publisher, node) = match options.node.clone() {
        Some(node_options) => {
            let (publisher, subscription) = published::channel(published::Published {
                status: AgentStatus::default(),
                pods: Vec::new(),
            });
            let node = crate::node::start(node_options, subscription).await;
            (Some(publisher), Some(node))
        }
        None => (None, None),
    };
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
        publisher,
        images,
    };
    ctx.note(format!(
        "watching {} as node {} (status on {})",
        ctx.options.manifest_dir.display(),
        ctx.options.node_name,
        socket.display()
    ));
    Supervisor::new(ctx).run(events_rx, shutdown).await;
    if let Some(node) = node {
        node.stop();
    }
    unix_server.abort();
    if let Some(server) = tcp_server {
        server.abort();
    }
    let _ = std::fs::remove_file(&socket);
    Ok(())
}

/// Binds the status socket (mode 0600; see [`server::bind_status_socket`]).
fn bind_socket(socket: &std::path::Path) -> Result<tokio::net::UnixListener, AgentError> {
    server::bind_status_socket(socket).map_err(|e| match e {
        server::BindError::InUse => AgentError::AlreadyRunning {
            socket: socket.to_path_buf(),
        },
        server::BindError::Io(source) => AgentError::Socket {
            socket: socket.to_path_buf(),
            source,
        },
    })
}
