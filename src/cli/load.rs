//! Loading the configuration for a command: the file (`--config`), the flags that override it,
//! and the host's facts. Shared by every command that renders.

use std::path::PathBuf;

use clap::Args;

use super::{CliError, ExitCode, GlobalArgs};
use crate::config::{self, Config, Overrides};
use crate::host::facts;

/// kubeadm's `init` flags that override the configuration file.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigFlags {
    /// Node name (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// The address the API server advertises (default: the default route's address).
    #[arg(long, value_name = "IP")]
    pub apiserver_advertise_address: Option<String>,
    /// A stable IP or DNS name (with optional port) for the control plane.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub control_plane_endpoint: Option<String>,
    /// The Kubernetes version to render for (default: the kube-apiserver binary's, else v1.36.2).
    #[arg(long, value_name = "VERSION")]
    pub kubernetes_version: Option<String>,
    /// The pod network; the controller-manager then allocates node CIDRs.
    #[arg(long, value_name = "CIDR")]
    pub pod_network_cidr: Option<String>,
    /// The service network (default 10.96.0.0/12).
    #[arg(long, value_name = "CIDR")]
    pub service_cidr: Option<String>,
    /// Where certificates live (default /etc/kubernetes/pki).
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<String>,
    /// A directory of templates overriding the built-in ones (same file names).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

impl ConfigFlags {
    fn overrides(&self) -> Overrides {
        Overrides {
            node_name: self.node_name.clone(),
            advertise_address: self.apiserver_advertise_address.clone(),
            control_plane_endpoint: self.control_plane_endpoint.clone(),
            kubernetes_version: self.kubernetes_version.clone(),
            pod_network_cidr: self.pod_network_cidr.clone(),
            service_cidr: self.service_cidr.clone(),
            cert_dir: self.cert_dir.clone(),
        }
    }
}

/// Reads, defaults, overrides, resolves and validates the configuration.
pub fn load(global: &GlobalArgs, flags: &ConfigFlags) -> Result<Config, CliError> {
    let documents = match &global.config {
        None => config::Documents::default(),
        Some(path) => parse_file(path)?,
    };
    let bin_dirs = documents
        .boot
        .as_ref()
        .map(|b| b.bin_dirs.clone())
        .unwrap_or_else(|| config::BootConfiguration::default().bin_dirs);
    // Running `<binary> --version` costs tens of milliseconds: only for versions not pinned.
    let pinned_kubernetes = flags.kubernetes_version.is_some()
        || documents
            .cluster
            .as_ref()
            .and_then(|c| c.kubernetes_version.as_deref())
            .is_some_and(|v| !v.starts_with("stable") && !v.starts_with("latest"));
    let pinned_etcd = documents
        .boot
        .as_ref()
        .is_some_and(|b| b.etcd_version.is_some());
    // The OCI runtime runs the images the versions name: host binaries say nothing about them.
    let host_binaries = documents
        .boot
        .as_ref()
        .map(|b| b.runtime)
        .unwrap_or_default()
        == config::RuntimeKind::Process;
    let wanted = facts::Detect {
        kubernetes: host_binaries && !pinned_kubernetes,
        etcd: host_binaries && !pinned_etcd,
    };
    let mut config = Config::build(
        documents,
        &flags.overrides(),
        &facts::gather(&bin_dirs, wanted),
    )
    .map_err(config_error)?;
    if let Some(dir) = &flags.templates {
        config.boot.templates_dir = Some(dir.clone());
    }
    Ok(config)
}

/// The configuration the node runs with, for day-two commands: `--config` when given, else the
/// effective configuration `boot init` or `boot join` recorded (`/var/lib/boot/config.yaml`
/// under the root), else the defaults.
pub fn load_effective(
    global: &GlobalArgs,
    root: &crate::host::HostRoot,
    flags: &ConfigFlags,
) -> Result<Config, CliError> {
    let recorded = root.path(crate::host::layout::EFFECTIVE_CONFIG);
    if global.config.is_none() && recorded.is_file() {
        let mut global = global.clone();
        global.config = Some(recorded);
        return load(&global, flags);
    }
    load(global, flags)
}

/// Parses a configuration file without resolving it against the host.
pub fn parse_file(path: &std::path::Path) -> Result<config::Documents, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            ExitCode::Usage,
            format!("cannot read the configuration {}: {e}", path.display()),
        )
        .with_hint("check the --config path and its permissions")
    })?;
    config::parse(&path.display().to_string(), &text).map_err(config_error)
}

pub fn config_error(err: config::ConfigError) -> CliError {
    let hint = err.hint.clone();
    let mut cli = CliError::new(ExitCode::Usage, err.to_string());
    cli.hint = hint
        .or_else(|| Some("`boot config print-defaults` shows every field with its default".into()));
    cli
}

/// Prints the configuration's warnings on stderr, kubeadm-style.
pub fn print_warnings(warnings: &[String]) {
    for warning in warnings {
        eprintln!("W [config] {warning}");
    }
}
