//! `boot agent`: the static pod agent in the foreground (what a service unit runs), and the hidden
//! `boot log-relay` each container's output goes through. SIGTERM or Ctrl-C stops the agent and
//! leaves the pods running unless `--stop-pods-on-exit`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{CliError, ExitCode, GlobalArgs};
use crate::agent::{self, AgentError, AgentOptions};
use crate::certs;
use crate::host::HostRoot;

#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// The directory of static pod manifests (default /etc/kubernetes/manifests, under --root).
    #[arg(long, value_name = "DIR")]
    pub pod_manifest_path: Option<PathBuf>,
    /// Where container commands are looked up before PATH (repeatable, in order).
    #[arg(long = "bin-dir", value_name = "DIR")]
    pub bin_dirs: Vec<PathBuf>,
    /// How containers run: `oci` (from their images; the default) or `process` (host binaries
    /// from --bin-dir). Overrides `BootConfiguration.runtime`.
    #[arg(long, value_enum, value_name = "RUNTIME")]
    pub runtime: Option<crate::config::RuntimeKind>,
    /// The node name; pods are named <name>-<node> (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Where /healthz is served over TCP, or `none` (default 127.0.0.1:10248, as the kubelet).
    #[arg(long, value_name = "IP:PORT")]
    pub status_address: Option<String>,
    /// Stop every pod when the agent stops (by default they keep running and the next agent
    /// adopts them).
    #[arg(long)]
    pub stop_pods_on_exit: bool,
    /// The kubelet's configuration file, read as the kubelet reads --config (default
    /// /var/lib/kubelet/config.yaml under --root, when it exists).
    #[arg(long = "kubelet-config", value_name = "FILE")]
    pub kubelet_config: Option<PathBuf>,
    /// The node's kubeconfig: with it the agent registers the Node, its Lease and mirror pods and
    /// serves the kubelet API (default /etc/kubernetes/kubelet.conf under --root, when it exists).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// CrashLoopBackOff's first delay in milliseconds (default 10000, the kubelet's).
    #[arg(long, value_name = "MS", hide = true)]
    pub backoff_initial_ms: Option<u64>,
    /// CrashLoopBackOff's longest delay in milliseconds (default 300000, the kubelet's).
    #[arg(long, value_name = "MS", hide = true)]
    pub backoff_max_ms: Option<u64>,
}

impl AgentOptions {
    /// The agent's options from `boot agent`'s flags over the defaults. (The configuration file's
    /// `BootConfiguration` and `KubeletConfiguration.staticPodPath` belong between the two.)
    pub fn from_args(global: &GlobalArgs, args: &AgentArgs) -> Result<AgentOptions, CliError> {
        Self::from_args_and_config(global, args).map(|(options, _)| options)
    }

    /// [`AgentOptions::from_args`], and the configuration it read (`--config`), if any.
    pub fn from_args_and_config(
        global: &GlobalArgs,
        args: &AgentArgs,
    ) -> Result<(AgentOptions, Option<crate::config::Config>), CliError> {
        let root = global.host_root()?;
        // The configuration file, when given, sits between the defaults and the flags.
        let config = match &global.config {
            Some(_) => Some(super::load::load(global, &Default::default())?),
            None => None,
        };
        let node_name = match (&args.node_name, &config) {
            (Some(name), _) => name.clone(),
            (None, Some(cfg)) => cfg.node_name.clone(),
            (None, None) => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().to_lowercase())
                .map_err(|e| {
                    CliError::usage(format!("cannot read the hostname: {e}"), "give --node-name")
                })?,
        };
        let mut options = AgentOptions::new(root.clone(), node_name);
        options.bin_dirs = crate::config::BootConfiguration::default().bin_dirs;
        if let Some(cfg) = &config {
            apply_config(&mut options, cfg)?;
        }
        attach_node(
            &mut options,
            config.as_ref(),
            args.kubelet_config.clone(),
            args.kubeconfig.clone(),
        )?;
        Self::apply_flags(&mut options, args)?;
        Ok((options, config))
    }

    /// The agent `boot init --agent=foreground` runs in its own process.
    pub fn from_config(
        root: HostRoot,
        cfg: &crate::config::Config,
    ) -> Result<AgentOptions, CliError> {
        let mut options = AgentOptions::new(root, cfg.node_name.clone());
        apply_config(&mut options, cfg)?;
        attach_node(&mut options, Some(cfg), None, None)?;
        Ok(options)
    }

    fn apply_flags(options: &mut AgentOptions, args: &AgentArgs) -> Result<(), CliError> {
        let root = options.root.clone();
        if let Some(dir) = &args.pod_manifest_path {
            options.manifest_dir = root.path(dir);
        }
        if !args.bin_dirs.is_empty() {
            options.bin_dirs = args.bin_dirs.clone();
        }
        if let Some(runtime) = args.runtime {
            options.runtime = runtime;
        }
        options.stop_pods_on_exit |= args.stop_pods_on_exit;
        match args.status_address.as_deref() {
            None => {}
            Some("none") => options.status_addr = None,
            Some(addr) => {
                options.status_addr = Some(addr.parse().map_err(|e| {
                    CliError::usage(
                        format!("--status-address {addr}: {e}"),
                        "give IP:PORT, e.g. 127.0.0.1:10248, or none",
                    )
                })?)
            }
        }
        if let Some(ms) = args.backoff_initial_ms {
            options.backoff.initial = Duration::from_millis(ms);
        }
        if let Some(ms) = args.backoff_max_ms {
            options.backoff.max = Duration::from_millis(ms);
        }
        Ok(())
    }
}

/// Reads the kubelet's configuration file (its `staticPodPath` moves the watched directory) and,
/// when the node's kubeconfig exists, turns on the node side.
fn attach_node(
    options: &mut AgentOptions,
    config: Option<&crate::config::Config>,
    kubelet_config: Option<PathBuf>,
    kubeconfig: Option<PathBuf>,
) -> Result<(), CliError> {
    let root = options.root.clone();
    let kubelet_config =
        kubelet_config.unwrap_or_else(|| root.path(crate::node::kubelet_config::KUBELET_CONFIG));
    let kubelet = crate::node::kubelet_config::read(&kubelet_config).map_err(|e| {
        CliError::new(ExitCode::Usage, e.to_string())
            .with_hint("fix or remove it; `boot init phase agent` writes it anew")
    })?;
    if let Some(kubelet) = &kubelet {
        if !kubelet.static_pod_path.is_empty() {
            options.manifest_dir = PathBuf::from(&kubelet.static_pod_path);
        }
    }
    let kubeconfig = kubeconfig
        .unwrap_or_else(|| root.path(format!("/etc/kubernetes/{}", crate::node::KUBELET_CONF)));
    if kubeconfig.exists() {
        let version = config.map(|c| format!("v{}", c.kubernetes_version));
        options.node = Some(node_options(
            options,
            &root,
            kubeconfig,
            kubelet.unwrap_or_default(),
            version,
        ));
    }
    Ok(())
}

/// The node side from the kubelet's configuration file (`/var/lib/kubelet/config.yaml`, or the
/// kubelet's defaults when there is none): identity, listen address, serving certificate.
fn node_options(
    options: &AgentOptions,
    root: &HostRoot,
    kubeconfig: PathBuf,
    kubelet: crate::node::KubeletConfiguration,
    version: Option<String>,
) -> crate::node::NodeOptions {
    use crate::node::kubelet_config::KUBELET_PKI_DIR;
    let or_default = |value: &str, default: PathBuf| {
        if value.is_empty() {
            default
        } else {
            PathBuf::from(value)
        }
    };
    let pki = root.path(KUBELET_PKI_DIR);
    crate::node::NodeOptions {
        kubeconfig,
        identity: crate::node::NodeIdentity {
            name: options.node_name.clone(),
            address: options.node_address.clone(),
            hostname: options.node_name.clone(),
            port: kubelet.port,
            version: format!(
                "{}+boot-{}",
                version.unwrap_or_else(|| "v0.0.0".into()),
                env!("CARGO_PKG_VERSION")
            ),
        },
        listen: kubelet
            .address
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| std::net::SocketAddr::new(ip, kubelet.port)),
        serving: crate::node::serving::ServingFiles {
            cert: or_default(&kubelet.tls_cert_file, pki.join("kubelet.crt")),
            key: or_default(&kubelet.tls_private_key_file, pki.join("kubelet.key")),
            client_ca: or_default(
                &kubelet.authentication.x509.client_ca_file,
                root.path("/etc/kubernetes/pki/ca.crt"),
            ),
        },
        authorize: kubelet.authorization.mode == "Webhook",
        kubelet_dir: root.path("/var/lib/kubelet"),
        status_update: kubelet.node_status_update_frequency.0,
        status_report: kubelet.node_status_report_frequency.0,
        print_events: options.print_events,
    }
}

/// `BootConfiguration.agent`, `binDirs` and `KubeletConfiguration.staticPodPath`.
fn apply_config(options: &mut AgentOptions, cfg: &crate::config::Config) -> Result<(), CliError> {
    let agent = &cfg.boot.agent;
    options.manifest_dir = options.root.path(&cfg.static_pod_path);
    options.bin_dirs = cfg.boot.bin_dirs.clone();
    options.node_address = cfg.advertise_address.to_string();
    options.status_addr = match agent.status_address.as_str() {
        "" | "none" => None,
        addr => Some(addr.parse().map_err(|e| {
            CliError::usage(
                format!("BootConfiguration.agent.statusAddress {addr:?}: {e}"),
                "give IP:PORT, e.g. 127.0.0.1:10248, or none",
            )
        })?),
    };
    options.backoff.initial = agent.backoff.initial.0;
    options.backoff.max = agent.backoff.max.0;
    options.backoff.reset_after = agent.backoff.reset_after.0;
    options.relist_period = agent.relist_period.0;
    options.stop_pods_on_exit = agent.stop_pods_on_exit;
    options.kubernetes_version = cfg.kubernetes_version.clone();
    if let Some(network) = &mut options.pod_network {
        let configured = &cfg.boot.network;
        network.conf_dir = options.root.path(&configured.conf_dir);
        network.bin_dirs = configured.bin_dirs.clone();
        network.default_network.subnet = configured.default_subnet;
    }
    options.runtime = cfg.boot.runtime;
    options.registries = cfg.boot.registries.clone();
    Ok(())
}

pub fn run(args: AgentArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let (options, config) = AgentOptions::from_args_and_config(global, &args)?;
    let renewal = config
        .as_ref()
        .map(|cfg| auto_renewal(cfg, &options.root, &options.status_socket));
    // One thread is plenty for a supervisor and keeps the agent small.
    let snapshots = config
        .as_ref()
        .and_then(|cfg| scheduled_snapshots(cfg, &options));
    let runtime = super::async_runtime(0)?;
    let result = runtime.block_on(async {
        let renewal = renewal.map(|auto| tokio::spawn(certs::auto::run(auto)));
        let snapshots = snapshots.map(|s| tokio::spawn(crate::etcd::snapshot::scheduled::run(s)));
        let result = agent::run(options, super::shutdown_signal()).await;
        for task in [renewal, snapshots].into_iter().flatten() {
            task.abort();
        }
        result
    });
    result.map(|()| ExitCode::Ok).map_err(|e| match e {
        AgentError::AlreadyRunning { .. } => CliError::new(ExitCode::Usage, e.to_string())
            .with_hint("stop the other agent, or give another --root"),
        AgentError::Images(_) => CliError::new(
            ExitCode::Files,
            "the agent could not open its image store",
        )
        .with_cause(e)
        .with_hint(
            "check /var/lib/boot/images under --root, or set BootConfiguration.runtime: process",
        ),
        other => CliError::new(ExitCode::Files, "the agent could not start").with_cause(other),
    })
}

/// Scheduled etcd snapshots beside the agent, when the configuration turns them on and names a
/// local etcd.
fn scheduled_snapshots(
    cfg: &crate::config::Config,
    options: &AgentOptions,
) -> Option<crate::etcd::snapshot::scheduled::Scheduled> {
    let snapshots = &cfg.boot.etcd_snapshots;
    if !snapshots.enabled || cfg.local_etcd().is_none() {
        return None;
    }
    Some(crate::etcd::snapshot::scheduled::Scheduled {
        // Validated when the configuration was loaded.
        schedule: snapshots.schedule.parse().ok()?,
        retention: snapshots.retention as usize,
        directory: options.root.path(&snapshots.directory),
        node_name: cfg.node_name.clone(),
        manifest_dir: options.manifest_dir.clone(),
        root: options.root.clone(),
    })
}

/// Automatic certificate renewal beside the agent, from the configuration it runs with.
pub fn auto_renewal(
    cfg: &crate::config::Config,
    root: &HostRoot,
    status_socket: &std::path::Path,
) -> certs::auto::AutoRenewal {
    certs::auto::AutoRenewal {
        layout: certs::CertsLayout {
            cert_dir: root.path(cfg.cert_dir()),
            kubernetes_dir: root.path("/etc/kubernetes"),
            local_etcd: cfg.local_etcd().is_some(),
        },
        algorithm: cfg.cluster.encryption_algorithm,
        validity: cfg.cluster.certificate_validity_period.0,
        renew_before: cfg.boot.certificates.renew_before.map(|d| d.0),
        manifest_dir: root.path(&cfg.static_pod_path),
        status_socket: status_socket.to_path_buf(),
        state_file: root.path(certs::auto::STATE_FILE),
    }
}

/// The per-container log relay (internal: the agent starts it).
#[derive(Debug, Clone, Args)]
pub struct LogRelayArgs {
    #[arg(long, value_name = "FILE")]
    pub file: PathBuf,
    #[arg(long, default_value_t = crate::runtime::logs::DEFAULT_MAX_SIZE)]
    pub max_size: u64,
    #[arg(long, default_value_t = crate::runtime::logs::DEFAULT_MAX_FILES)]
    pub max_files: u32,
}

pub fn run_log_relay(args: LogRelayArgs) -> Result<ExitCode, CliError> {
    crate::runtime::logs::relay::run(&args.file, args.max_size, args.max_files)
        .map(|()| ExitCode::Ok)
        .map_err(|e| {
            CliError::new(
                ExitCode::Files,
                format!("log relay for {}", args.file.display()),
            )
            .with_cause(e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Config, HostFacts, Overrides};

    #[test]
    fn probes_carry_the_configured_kubernetes_version() {
        let docs = config::parse(
            "test.yaml",
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.36.2\n",
        )
        .unwrap();
        let facts = HostFacts {
            hostname: "node".into(),
            default_address: Some([10, 0, 0, 1].into()),
            ..HostFacts::default()
        };
        let cfg = Config::build(docs, &Overrides::default(), &facts).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let options =
            AgentOptions::from_config(HostRoot::under(dir.path()).unwrap(), &cfg).unwrap();
        assert_eq!(
            crate::probe::http::user_agent(&options.kubernetes_version),
            "kube-probe/1.36"
        );
    }
}
