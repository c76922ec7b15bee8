//! `boot init`: bootstrap the control plane; `boot init phase <name>` runs one file-writing phase
//! on its own, writing to the real paths (or under `--root`).

use std::time::SystemTime;

use clap::{Args, Subcommand};

use super::load::{self, ConfigFlags};
use super::output;
use super::{CliError, ExitCode, GlobalArgs};
use crate::config::AgentMode;
use crate::init::phases::{self, PhaseName};
use crate::init::run::{self as init_run, InitError, InitRequest};
use crate::init::wait::WaitFailure;
use crate::render::{self, OutputLayout, Parts, Templates, COMPONENTS};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct InitArgs {
    #[command(subcommand)]
    pub command: Option<InitCommand>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Phases to skip, comma-separated (preflight, certs, kubeconfig, etcd, control-plane, agent,
    /// wait-control-plane, post-boot).
    #[arg(long, value_name = "PHASES", value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    /// Print the plan and every file that would be written; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Preflight checks whose errors become warnings (kubeadm's names, or `all`).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub ignore_preflight_errors: Vec<String>,
    /// How the agent runs: a systemd unit, a detached daemon, or inside this process.
    #[arg(long, value_enum)]
    pub agent: Option<AgentMode>,
    /// Pull the control-plane images in preflight, as kubeadm does (always done with
    /// `runtime: oci`, whose agent runs the images).
    #[arg(long)]
    pub pull_images: bool,
    #[command(flatten)]
    pub join: super::join_data::JoinDataFlags,
    #[command(flatten)]
    pub config: ConfigFlags,
}

#[derive(Debug, Subcommand)]
pub enum InitCommand {
    /// Run one phase of init.
    Phase {
        #[command(subcommand)]
        phase: Phase,
    },
}

#[derive(Debug, Subcommand)]
pub enum Phase {
    /// Generate the certificate authorities, certificates and the service-account key pair.
    Certs(PhaseArgs),
    /// Write admin.conf, super-admin.conf, controller-manager.conf and scheduler.conf.
    Kubeconfig(PhaseArgs),
    /// Write the etcd static pod manifest.
    Etcd(PhaseArgs),
    /// Write the kube-apiserver, kube-controller-manager and kube-scheduler manifests.
    ControlPlane(PhaseArgs),
    /// Run the preflight checks only.
    Preflight(RunArgs),
    /// Start the static pod agent.
    Agent(RunArgs),
    /// Wait until every control plane component is healthy.
    WaitControlPlane(RunArgs),
    /// Bind kubeadm:cluster-admins and upload the ClusterConfiguration (idempotent).
    PostBoot(RunArgs),
    /// Upload the shared certificates, encrypted, to Secret kube-system/kubeadm-certs (with
    /// --upload-certs) and print the key.
    UploadCerts(RunArgs),
    /// Create the bootstrap token, its RBAC, kubelet-config and the signed cluster-info.
    BootstrapToken(RunArgs),
}

#[derive(Debug, Args)]
pub struct PhaseArgs {
    #[command(flatten)]
    pub config: ConfigFlags,
}

pub fn run(args: InitArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let Some(InitCommand::Phase { phase }) = args.command else {
        return run_all(args.run, global);
    };
    let only = |name: PhaseName, mut args: RunArgs| {
        args.skip_phases = phases::ALL
            .iter()
            .filter(|p| **p != name)
            .map(|p| p.to_string())
            .collect();
        run_all(args, global)
    };
    let (flags, parts) = match &phase {
        Phase::Preflight(_)
        | Phase::Agent(_)
        | Phase::WaitControlPlane(_)
        | Phase::PostBoot(_)
        | Phase::UploadCerts(_)
        | Phase::BootstrapToken(_) => {
            return match phase {
                Phase::Preflight(a) => only(PhaseName::Preflight, a),
                Phase::Agent(a) => only(PhaseName::Agent, a),
                Phase::WaitControlPlane(a) => only(PhaseName::WaitControlPlane, a),
                Phase::PostBoot(a) => only(PhaseName::PostBoot, a),
                Phase::UploadCerts(a) => only(PhaseName::UploadCerts, a),
                Phase::BootstrapToken(a) => only(PhaseName::BootstrapToken, a),
                _ => unreachable!("matched above"),
            };
        }
        Phase::Certs(a) => (
            &a.config,
            Parts {
                pki: true,
                kubeconfigs: false,
                components: &[],
            },
        ),
        Phase::Kubeconfig(a) => (
            &a.config,
            Parts {
                pki: false,
                kubeconfigs: true,
                components: &[],
            },
        ),
        Phase::Etcd(a) => (
            &a.config,
            Parts {
                pki: false,
                kubeconfigs: false,
                components: &COMPONENTS[..1],
            },
        ),
        Phase::ControlPlane(a) => (
            &a.config,
            Parts {
                pki: false,
                kubeconfigs: false,
                components: &COMPONENTS[1..],
            },
        ),
    };
    let root = global.host_root()?;
    let cfg = load::load(global, flags)?;
    let templates = Templates::with_overrides(cfg.boot.templates_dir.as_deref())
        .map_err(output::render_error)?;
    let layout = OutputLayout::host(&cfg, &root);
    let bundle = render::bundle(&cfg, &root, &templates, &layout, parts, SystemTime::now())
        .map_err(output::render_error)?;
    load::print_warnings(&bundle.warnings);
    output::write(&bundle.files)?;
    output::report(&bundle, &layout);
    Ok(ExitCode::Ok)
}

/// The whole of `boot init`.
fn run_all(args: RunArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    use std::io::IsTerminal;
    let root = global.host_root()?;
    let cfg = load::load(global, &args.config)?;
    load::print_warnings(&cfg.warnings);
    let templates = Templates::with_overrides(cfg.boot.templates_dir.as_deref())
        .map_err(output::render_error)?;
    let skip = phases::skipped(&args.skip_phases, &cfg.init.skip_phases)
        .map_err(|e| CliError::usage(format!("--skip-phases: {e}"), "see `boot init --help`"))?;
    let mut ignore = args.ignore_preflight_errors.clone();
    ignore.extend(
        cfg.init
            .node_registration
            .ignore_preflight_errors
            .iter()
            .cloned(),
    );
    let mode = args.agent.unwrap_or(cfg.boot.agent.mode);
    let exe = std::env::current_exe().map_err(|e| {
        CliError::new(ExitCode::Files, "cannot find the boot executable").with_cause(e)
    })?;
    let request = InitRequest {
        cfg: &cfg,
        root: &root,
        templates: &templates,
        skip,
        dry_run: args.dry_run || cfg.init.dry_run,
        ignore_preflight: ignore,
        agent_mode: mode,
        exe,
        live: std::io::stdout().is_terminal(),
        pull_images: args.pull_images || cfg.boot.runtime == crate::config::RuntimeKind::Oci,
        join: super::join_data::join_data(&args.join, &cfg)?,
    };
    let runtime = super::async_runtime(2)?;
    let foreground = mode == AgentMode::Foreground;
    runtime.block_on(async {
        let mut stdout = std::io::stdout();
        // Preflight, the ledger and the files first: a foreground agent binds its ports only
        // after preflight checked them, and creates its directories after they were recorded.
        let Some(prepared) = init_run::prepare(&request, &mut stdout)
            .await
            .map_err(|e| init_error(e, &root))?
        else {
            return Ok(ExitCode::Ok);
        };
        let agent = if foreground && request.skip.iter().all(|p| *p != PhaseName::Agent) {
            let options = crate::agent::AgentOptions::from_config(root.clone(), &cfg)?;
            // Automatic certificate renewal runs beside the agent here too, as `boot agent` runs it.
            let renewal = super::agent::auto_renewal(&cfg, &root, &options.status_socket);
            let renewal = tokio::spawn(crate::certs::auto::run(renewal));
            let agent = tokio::spawn(crate::agent::run(options, super::shutdown_signal()));
            Some((agent, renewal))
        } else {
            None
        };
        let took = init_run::finish(&request, prepared, &mut stdout)
            .await
            .map_err(|e| init_error(e, &root))?;
        print_finish(&root, took);
        if request.runs(PhaseName::BootstrapToken) {
            if let Some(text) = super::join_data::join_commands(&cfg, &root, &request.join) {
                println!("\n{text}");
            }
        }
        if let Some((agent, renewal)) = agent {
            println!(
                "[agent] Running in the foreground; Ctrl-C stops the agent (the pods keep running)"
            );
            let ended = agent.await;
            renewal.abort();
            if let Ok(Err(e)) = ended {
                return Err(CliError::new(ExitCode::AgentDown, "the agent stopped").with_cause(e));
            }
        }
        Ok(ExitCode::Ok)
    })
}

fn print_finish(root: &crate::host::HostRoot, took: std::time::Duration) {
    let admin = init_run::admin_conf(root);
    let root_flag = if root.is_system() {
        String::new()
    } else {
        format!(" --root {}", root.prefix().display())
    };
    println!(
        "\nYour Kubernetes control-plane has initialized successfully in {:.1}s!\n",
        took.as_secs_f64()
    );
    println!(
        "To use it, run:\n\n  export KUBECONFIG={}\n  kubectl get --raw /readyz\n",
        admin.display()
    );
    println!("Check the static pods with `boot status{root_flag}`; take everything down with `boot reset{root_flag}`.");
}

pub(super) fn init_error(err: InitError, root: &crate::host::HostRoot) -> CliError {
    let root_flag = if root.is_system() {
        String::new()
    } else {
        format!(" --root {}", root.prefix().display())
    };
    let reset = format!("`boot reset{root_flag}` removes what init created");
    match err {
        InitError::Preflight(report) => {
            let mut e = CliError::new(
                ExitCode::Preflight,
                format!("preflight checks failed\n{report}"),
            );
            e.hint = Some(format!("fix the errors above, or make a check non-fatal with --ignore-preflight-errors=NAME; {reset}"));
            e
        }
        InitError::Render(err) => output::render_error(err),
        InitError::Wait(failure) => {
            let (headline, diagnoses) = match failure {
                WaitFailure::TimedOut { after, diagnoses } => (
                    format!(
                        "the control plane did not become healthy within {:.0}s",
                        after.as_secs_f64()
                    ),
                    diagnoses,
                ),
                WaitFailure::CrashLoop { diagnoses } => (
                    "a control plane component is crash-looping".to_string(),
                    diagnoses,
                ),
                WaitFailure::AgentUnreachable { socket, error } => (
                    format!("the agent does not answer on {}: {error}", socket.display()),
                    vec![],
                ),
            };
            let text: String = diagnoses.iter().map(|d| d.to_string()).collect();
            CliError::new(
                ExitCode::Timeout,
                format!("{headline}\n{}", text.trim_end()),
            )
            .with_hint(format!(
                "`boot status -v{root_flag}` and `boot logs POD{root_flag}` show more; {reset}"
            ))
        }
        InitError::Images(err) => super::images::image_error(err),
        // The files are written by now: these are not "nothing was written" failures.
        err @ InitError::Agent(_) => {
            CliError::new(ExitCode::AgentDown, err.to_string()).with_hint(reset)
        }
        err @ InitError::PostBoot(_) => CliError::new(ExitCode::Timeout, err.to_string())
            .with_hint(format!(
                "`boot init phase post-boot{root_flag}` retries it once the API server answers; {reset}"
            )),
        other => CliError::new(ExitCode::Files, other.to_string()).with_hint(reset),
    }
}
