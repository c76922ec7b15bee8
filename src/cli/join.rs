//! `boot join ENDPOINT --token … --discovery-token-ca-cert-hash sha256:… --control-plane
//! --certificate-key …`: kubeadm's join flags (and `JoinConfiguration` for the same), for
//! control-plane nodes only. A join that fails or is interrupted (SIGINT, SIGTERM) after it changed
//! the host removes the etcd member it added and what it wrote before it exits
//! ([`super::join_rollback`]); so does the next join after one that was killed.

use clap::Args;

use super::join_plan::JoinPlan;
use super::join_rollback;
use super::load;
use super::{CliError, ExitCode, GlobalArgs};
use crate::config::{self, AgentMode, ClusterConfiguration, Config, InitConfiguration, Overrides};
use crate::host::ledger::Ledger;
use crate::host::{facts, HostRoot};
use crate::join::run::{self as join_run, JoinError, JoinRequest};

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// The API server to join through (`host:port`, the control-plane endpoint).
    #[arg(value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
    /// The bootstrap token (for discovery and, in kubeadm, TLS bootstrap).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// The bootstrap token for discovery only (defaults to --token).
    #[arg(long, value_name = "TOKEN")]
    pub discovery_token: Option<String>,
    /// The CA's public key pin, `sha256:<hex>` (repeatable).
    #[arg(long, value_name = "HASH")]
    pub discovery_token_ca_cert_hash: Vec<String>,
    /// Token discovery without a CA pin (the token's signature is still checked).
    #[arg(long)]
    pub discovery_token_unsafe_skip_ca_verification: bool,
    /// File discovery: a kubeconfig file or an https:// URL with the cluster's server and CA.
    #[arg(long, value_name = "PATH_OR_URL")]
    pub discovery_file: Option<String>,
    /// The bootstrap token the node authenticates with after discovery (defaults to --token).
    #[arg(long, value_name = "TOKEN")]
    pub tls_bootstrap_token: Option<String>,
    /// Join as a control-plane node (the only kind boot runs).
    #[arg(long)]
    pub control_plane: bool,
    /// The key that decrypts the `kubeadm-certs` Secret (`boot init --upload-certs` printed it).
    #[arg(long, value_name = "KEY")]
    pub certificate_key: Option<String>,
    /// The address this node's API server and etcd advertise (default: the default route's).
    #[arg(long, value_name = "IP")]
    pub apiserver_advertise_address: Option<String>,
    /// This node's API server port (default 6443).
    #[arg(long, value_name = "PORT")]
    pub apiserver_bind_port: Option<u16>,
    /// This node's name (default: the hostname).
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Preflight checks whose errors become warnings (kubeadm's names, or `all`).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// How the agent runs: a systemd unit or a detached daemon.
    #[arg(long, value_enum)]
    pub agent: Option<AgentMode>,
}

pub fn run(args: JoinArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let docs = match &global.config {
        Some(path) => Some(load::parse_file(path)?),
        None => None,
    };
    let join = docs
        .as_ref()
        .and_then(|d| d.join.clone())
        .unwrap_or_default();
    let plan = JoinPlan::parse(&args, &join)?;
    let mode = args
        .agent
        .or_else(|| {
            docs.as_ref()
                .and_then(|d| d.boot.as_ref())
                .map(|b| b.agent.mode)
        })
        .unwrap_or_default();
    if mode == AgentMode::Foreground {
        return Err(CliError::usage(
            "boot join runs the agent as a daemon or a systemd unit",
            "use --agent=detach or --agent=systemd",
        ));
    }
    let overrides = Overrides {
        node_name: args.node_name.clone(),
        advertise_address: args.apiserver_advertise_address.clone(),
        ..Overrides::default()
    };
    let mut init = InitConfiguration {
        node_registration: join.node_registration.clone(),
        timeouts: join.timeouts.clone(),
        ..InitConfiguration::default()
    };
    if let Some(cp) = &join.control_plane {
        init.local_api_endpoint = cp.local_api_endpoint.clone();
    }
    if let Some(port) = args.apiserver_bind_port {
        init.local_api_endpoint.bind_port = port;
    }
    let config_path = global.config.clone();
    let builder = move |cluster: ClusterConfiguration| -> Result<Config, config::ConfigError> {
        // The node's own file again (its BootConfiguration and KubeletConfiguration), the
        // cluster's ClusterConfiguration, and this node's registration and API endpoint.
        let mut docs = match &config_path {
            Some(path) => {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                config::parse(&path.display().to_string(), &text)?
            }
            None => config::Documents::default(),
        };
        docs.cluster = Some(cluster);
        docs.init = Some(init.clone());
        let bin_dirs = docs
            .boot
            .as_ref()
            .map(|b| b.bin_dirs.clone())
            .unwrap_or_else(|| config::BootConfiguration::default().bin_dirs);
        let pinned_etcd = docs.boot.as_ref().is_some_and(|b| b.etcd_version.is_some());
        let wanted = facts::Detect {
            kubernetes: false,
            etcd: !pinned_etcd,
        };
        Config::build(docs, &overrides, &facts::gather(&bin_dirs, wanted))
    };
    let mut ignore = args.ignore_preflight_errors.clone();
    ignore.extend(
        join.node_registration
            .ignore_preflight_errors
            .iter()
            .cloned(),
    );
    let exe = std::env::current_exe().map_err(|e| {
        CliError::new(ExitCode::Files, "cannot find the boot executable").with_cause(e)
    })?;
    let request = JoinRequest {
        root: &root,
        discovery: &plan.discovery,
        certificate_key: &plan.certificate_key,
        config: &builder,
        timeouts: join.timeouts.clone(),
        ignore_preflight: ignore,
        agent_mode: mode,
        exe,
        live: std::io::IsTerminal::is_terminal(&std::io::stdout()),
    };
    let runtime = super::async_runtime(2)?;
    runtime.block_on(async {
        // A journal left by a killed join: its member goes first, so the others keep quorum,
        // then what it wrote.
        roll_back_leftover(&root, &request.timeouts).await?;
        // A ledger from before this join is not the join's to undo (preflight refuses such a
        // node, but an interrupt may come before preflight).
        let had_ledger = Ledger::path(&root).symlink_metadata().is_ok();
        let mut stdout = std::io::stdout();
        let outcome = tokio::select! {
            joined = join_run::run(&request, &mut stdout) => joined.map_err(Failure::Join),
            _ = super::shutdown_signal() => Err(Failure::Interrupted),
        };
        match outcome {
            Ok(joined) => {
                print_joined(&root, &joined);
                Ok(ExitCode::Ok)
            }
            Err(failure) => {
                // Described first: a failed wait reports the components' logs, which go next.
                let described = describe(failure, &root);
                let undone = match described.nothing_changed {
                    true => None,
                    false => Some(join_rollback::undo(&root, &request.timeouts, !had_ledger).await),
                };
                Err(described.into_error(undone, &root))
            }
        }
    })
}

enum Failure {
    Join(JoinError),
    Interrupted,
}

/// What a join that was killed left (its journal says it never finished): its etcd member and
/// the files its ledger lists go before this join starts.
async fn roll_back_leftover(root: &HostRoot, timeouts: &config::Timeouts) -> Result<(), CliError> {
    let journal = join_rollback::unfinished(root).map_err(|e| {
        CliError::new(ExitCode::Files, e)
            .with_hint("`boot reset` removes what an earlier join left")
    })?;
    if journal.is_none() {
        return Ok(());
    }
    println!("[etcd] An earlier join of this node did not finish: removing its etcd member and what it wrote first");
    let undone = join_rollback::undo(root, timeouts, true).await;
    for line in &undone.lines {
        println!("[join] {line}");
    }
    if undone.clean {
        return Ok(());
    }
    Err(CliError::new(ExitCode::Unhealthy, "cannot undo what an earlier join of this node left")
        .with_hint("reach the cluster's etcd, or remove the member with `etcdctl member remove`, then run `boot reset`"))
}

fn print_joined(root: &HostRoot, joined: &join_run::Joined) {
    let root_flag = root_flag(root);
    println!("\nThis node has joined the cluster and a new control plane instance was created in {:.1}s:\n", joined.took.as_secs_f64());
    println!(
        "* A new etcd member was added to the stacked etcd cluster and promoted once caught up."
    );
    println!(
        "* The control plane label and taint were applied to node {:?}.",
        joined.node_name
    );
    println!("* The static pod agent runs this node's control plane.\n");
    println!(
        "To administer the cluster from this node:\n\n  export KUBECONFIG={}\n  kubectl get nodes\n",
        joined.admin_conf.display()
    );
    println!("Check the static pods with `boot status{root_flag}`; `boot reset{root_flag}` removes this node (and its etcd member).");
}

fn root_flag(root: &HostRoot) -> String {
    if root.is_system() {
        String::new()
    } else {
        format!(" --root {}", root.prefix().display())
    }
}

/// A failed join as the user is told: exit code, headline, hint, and whether it changed nothing.
struct Described {
    code: ExitCode,
    headline: String,
    hint: String,
    nothing_changed: bool,
}

fn describe(failure: Failure, root: &HostRoot) -> Described {
    let err = match failure {
        Failure::Interrupted => {
            return Described {
                code: ExitCode::Unhealthy,
                headline: "join interrupted".into(),
                hint: String::new(),
                nothing_changed: false,
            }
        }
        Failure::Join(err) => err,
    };
    let nothing_changed = err.changed_nothing();
    let (code, hint) = match &err {
        JoinError::Discovery(e) => (ExitCode::Join, e.hint()),
        JoinError::Certs(e) => (ExitCode::Join, e.hint()),
        JoinError::ClusterConfig { .. } => (
            ExitCode::Join,
            "the token must be valid and the cluster's kubeadm-config readable with it (boot init's post-boot uploads it)".into(),
        ),
        JoinError::Config(_) => (ExitCode::Usage, "`boot config print-defaults` shows every field".into()),
        JoinError::Preflight(_) => (
            ExitCode::Preflight,
            "fix the errors above, or make a check non-fatal with --ignore-preflight-errors=NAME".into(),
        ),
        JoinError::Etcd(e) => (ExitCode::Join, e.hint().to_string()),
        JoinError::Promote(_) => (ExitCode::Timeout, "this node's etcd must reach the other members on their peer port (2380), and they it".into()),
        JoinError::Wait(_) => (ExitCode::Timeout, "the component's log lines above show why it is unhealthy".into()),
        JoinError::Agent(_) => (ExitCode::AgentDown, String::new()),
        JoinError::NoEncryptionConfig(_) => (
            ExitCode::Join,
            "upload the certificates again from a node that encrypts secrets (`boot init phase upload-certs --upload-certs`), or set encryptionAtRest.enabled: false in this node's BootConfiguration if the cluster does not encrypt".into(),
        ),
        _ => (ExitCode::Files, String::new()),
    };
    let headline = match err {
        JoinError::Preflight(report) => format!("preflight checks failed\n{report}"),
        // init's report of a wait that failed: which component, why, its last log lines.
        JoinError::Wait(failure) => {
            super::init::init_error(crate::init::InitError::Wait(failure), root).headline
        }
        other => other.to_string(),
    };
    Described {
        code,
        headline,
        hint,
        nothing_changed,
    }
}

impl Described {
    /// The error, with what undoing the join did (`None`: there was nothing to undo).
    fn into_error(self, undone: Option<join_rollback::Undone>, root: &HostRoot) -> CliError {
        let mut headline = self.headline;
        let tail = match &undone {
            // Interrupted before it wrote anything.
            Some(undone) if undone.clean && undone.lines.is_empty() => {
                "nothing was changed on this node".to_string()
            }
            None => "nothing was changed on this node".to_string(),
            Some(undone) => {
                for line in &undone.lines {
                    headline.push_str(&format!("\n{line}"));
                }
                match undone.clean {
                    true => "the join was rolled back; run it again once the cause is fixed".into(),
                    false => format!(
                        "`boot reset{}` removes what the join wrote",
                        root_flag(root)
                    ),
                }
            }
        };
        let hint = match self.hint.is_empty() {
            true => tail,
            false => format!("{}; {tail}", self.hint),
        };
        CliError::new(self.code, headline).with_hint(hint)
    }
}
