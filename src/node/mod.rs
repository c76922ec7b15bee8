//! The agent's face in the API (design §8 "node"), apart from supervision: with `kubelet.conf`
//! it registers the control-plane Node, renews its Lease, keeps a mirror pod per static pod and
//! rejects any other pod bound to the node ([`sync`]), and serves the kubelet's read API on
//! `:10250` ([`server`]) so that `kubectl logs` reaches the static pods' logs; [`events`] posts
//! the kubelet's events about the static pods.
//!
//! It starts with the agent, runs beside the supervisor on the same runtime and only reads the
//! states the supervisor publishes ([`crate::agent::published`]); nothing in supervision waits on
//! it. The API server may be down (it is one of the pods): the sync backs off and catches up.
//!
//! Touches: reads `<root>/etc/kubernetes/kubelet.conf`, the cluster CA, `/proc` and `/sys` host
//! facts ([`host_info`]), `<root>/var/log/pods`; writes `<root>/var/lib/kubelet/pki/kubelet.{crt,key}`.
//! [`kubelet_config`] is `/var/lib/kubelet/config.yaml`; [`mark`] is init's `mark-control-plane`.

pub mod auth;
pub mod events;
pub mod host_info;
pub mod kubelet_config;
pub mod logs;
pub mod mark;
pub mod objects;
pub mod server;
pub mod serving;
pub mod sync;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use kubelet_config::KubeletConfiguration;
pub use objects::NodeIdentity;

use crate::agent::published::Subscription;

/// kubeadm's `KubeletKubeConfigFileName`.
pub const KUBELET_CONF: &str = "kubelet.conf";

#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// `kubelet.conf`: the node's identity for every API call.
    pub kubeconfig: PathBuf,
    pub identity: NodeIdentity,
    /// Where the kubelet API listens (`address:port`); `None` serves none.
    pub listen: Option<SocketAddr>,
    pub serving: serving::ServingFiles,
    /// `authorization.mode: Webhook` (otherwise every authenticated user is allowed).
    pub authorize: bool,
    /// The directory whose filesystem is the node's ephemeral storage.
    pub kubelet_dir: PathBuf,
    /// `nodeStatusUpdateFrequency` and `nodeStatusReportFrequency`.
    pub status_update: Duration,
    pub status_report: Duration,
    pub print_events: bool,
}

/// The running node side; [`NodeHandle::stop`] ends it.
pub struct NodeHandle {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl NodeHandle {
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Starts the sync and, when it can, the `:10250` server. Problems with the server (port taken,
/// no CA key to sign a serving certificate) are reported and leave the sync running: the API is
/// optional for the agent, which starts the API server itself.
pub async fn start(options: NodeOptions, subscription: Subscription) -> NodeHandle {
    let options = Arc::new(options);
    let mut tasks = Vec::new();
    if let Some(addr) = options.listen {
        match prepare_server(&options, addr).await {
            Ok((listener, tls)) => {
                if options.print_events {
                    println!("[agent] Serving the kubelet API on https://{addr}");
                }
                tasks.push(tokio::spawn(server::serve(
                    listener,
                    tls,
                    options.clone(),
                    subscription.states.clone(),
                )))
            }
            Err(why) => println!("[agent] The kubelet API on {addr} is not served: {why}"),
        }
    }
    let queue = Arc::new(events::Queue::default());
    let (api, api_rx) = tokio::sync::watch::channel(None);
    tasks.push(tokio::spawn(events::watch_states(
        subscription.states.clone(),
        queue.clone(),
    )));
    tasks.push(tokio::spawn(events::post(
        queue.clone(),
        api_rx,
        options.identity.name.clone(),
    )));
    let sync = sync::NodeSync::new(
        options,
        subscription.states,
        subscription.api_sync,
        subscription.heartbeat,
        sync::EventsLink { api, queue },
    );
    tasks.push(tokio::spawn(sync.run()));
    NodeHandle { tasks }
}

async fn prepare_server(
    options: &NodeOptions,
    addr: SocketAddr,
) -> Result<(tokio::net::TcpListener, Arc<rustls::ServerConfig>), String> {
    let address: Vec<IpAddr> = options.identity.address.parse().into_iter().collect();
    let issued = serving::ensure_certificate(&options.serving, &options.identity.name, &address)
        .map_err(|e| e.to_string())?;
    if issued && options.print_events {
        println!(
            "[agent] Issued the kubelet serving certificate {} (signed by {})",
            options.serving.cert.display(),
            options.serving.client_ca.display()
        );
    }
    let tls = serving::server_config(&options.serving).map_err(|e| e.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen: {e}"))?;
    Ok((listener, tls))
}
