//! The command line: clap commands, output on stdout in kubeadm's `[phase] message` style,
//! errors on stderr as one headline, the cause chain and a `hint:`, mapped to exit codes.

mod agent;
mod certs;
mod config_cmd;
mod error;
mod etcd;
mod images;
mod init;
mod join;
mod join_data;
mod join_plan;
mod join_rollback;
mod load;
mod logs;
mod manifests;
mod output;
mod reset;
mod secrets;
mod status;
mod token;

pub use error::{CliError, ExitCode};

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::host::HostRoot;

/// Bootstraps a Kubernetes control plane the way `kubeadm init` does, with an embedded static pod
/// agent instead of a kubelet.
#[derive(Debug, Parser)]
#[command(name = "boot", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command understands.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// kubeadm v1beta4 configuration (InitConfiguration, ClusterConfiguration, BootConfiguration).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Keep every host path under DIR instead of / (the files reference the prefixed paths).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// More output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// The host root: `--root DIR` or the real `/`.
    pub fn host_root(&self) -> Result<HostRoot, CliError> {
        match &self.root {
            None => Ok(HostRoot::system()),
            Some(dir) => HostRoot::under(dir).map_err(|e| {
                CliError::usage(
                    format!("--root {}: {e}", dir.display()),
                    "give an existing or creatable directory",
                )
            }),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate the static pod manifests (and with --pki the PKI and kubeconfigs) without
    /// touching the host.
    Manifests(manifests::ManifestsArgs),
    /// Bootstrap the control plane; `boot init phase <name>` runs one phase.
    Init(Box<init::InitArgs>),
    /// Join this machine to a cluster as another control-plane node (stacked etcd).
    Join(Box<join::JoinArgs>),
    /// Stop the agent and the pods and remove everything init created; then check nothing is left.
    Reset(reset::ResetArgs),
    /// Print the default configuration, or validate a configuration file.
    #[command(subcommand)]
    Config(config_cmd::ConfigCommand),
    /// Run the static pod agent in the foreground.
    Agent(agent::AgentArgs),
    /// Show the agent and every static pod; exits 0 only when all are running and ready.
    Status(status::StatusArgs),
    /// Certificate expiry and renewal (kubeadm's `certs` commands).
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Encryption at rest: `rotate-key` replaces the key without losing access to any Secret.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// etcd snapshots of this node's member: save, list, prune, restore.
    #[command(subcommand)]
    Etcd(etcd::EtcdCommand),
    /// The images init uses, pulling and importing them, and the local image store.
    #[command(subcommand)]
    Images(images::ImagesCommand),
    /// Print a static pod's container log.
    Logs(logs::LogsArgs),
    /// Bootstrap tokens for joining nodes (kubeadm's `token` commands).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Relay a container's output into its CRI log file (started by the agent).
    #[command(hide = true)]
    LogRelay(agent::LogRelayArgs),
    /// Create a container or run a command in one (started by the agent's OCI runtime).
    #[command(hide = true)]
    OciShim(crate::runtime::oci::shim::ShimArgs),
}

/// Resolves on SIGTERM or SIGINT: how `boot agent` (and `boot init --agent=foreground`) are told to
/// stop.
pub(crate) async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
}

/// The command line, with what clap's derive cannot say statically: `boot init phase --help`
/// lists init's phases from the phase list itself.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommand("init", |init| {
        init.mut_subcommand("phase", |phase| {
            phase.after_help(init::phase_help()).term_width(0)
        })
    })
}

/// Parses the command line, runs the command and exits with its code.
pub fn main() {
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    let code = match run(cli) {
        Ok(code) => code,
        Err(err) => {
            err.print();
            err.exit_code()
        }
    };
    std::process::exit(code as i32);
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let global = &cli.global;
    match cli.command {
        Command::Manifests(args) => manifests::run(args, global),
        Command::Init(args) => init::run(*args, global),
        Command::Join(args) => join::run(*args, global),
        Command::Config(command) => config_cmd::run(command, global),
        Command::Reset(args) => reset::run(args, global),
        Command::Agent(args) => agent::run(args, global),
        Command::Status(args) => status::run(args, global),
        Command::Logs(args) => logs::run(args, global),
        Command::Token(command) => token::run(command, global),
        Command::Certs(command) => certs::run(command, global),
        Command::Images(command) => images::run(command, global),
        Command::Etcd(command) => etcd::run(command, global),
        Command::Secrets(command) => secrets::run(command, global),
        Command::LogRelay(args) => agent::run_log_relay(args),
        Command::OciShim(args) => std::process::exit(crate::runtime::oci::shim::run(args)),
    }
}

/// The async runtime a command runs on: `threads` workers, or the calling thread alone for 0 (the
/// agent and the short API commands: one thread is plenty and keeps them small).
fn async_runtime(threads: usize) -> Result<tokio::runtime::Runtime, CliError> {
    let mut builder = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut multi = tokio::runtime::Builder::new_multi_thread();
        multi.worker_threads(threads);
        multi
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::new(ExitCode::Usage, "cannot start the async runtime").with_cause(e))
}
