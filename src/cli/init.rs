//! `boot init`: bootstrap the control plane; `boot init phase <name>` runs one file-writing phase
//! on its own, writing to the real paths (or under `--root`).

use std::io::IsTerminal;
use std::time::Instant;

use clap::{Args, Subcommand};

use super::load::{self, ConfigFlags};
use super::output;
use super::{CliError, ExitCode, GlobalArgs};
use crate::config::{AgentMode, Config};
use crate::controlplane::wait::WaitFailure;
use crate::host::HostRoot;
use crate::init::{ForegroundAgent, InitContext, InitError, InitRequest, StartForeground, PHASES};
use crate::phases::{self, Selection};
use crate::render::Templates;

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
    /// Phases to skip, comma-separated (`boot init phase --help` lists them; skipping a parent
    /// such as `control-plane` skips its children).
    #[arg(long, value_name = "PHASES", value_delimiter = ',')]
    pub skip_phases: Vec<String>,
    /// Print the plan and every file that would be written; write nothing (preflight still
    /// checks, as kubeadm's).
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
    /// Run one phase of init (or a parent's children); the phases are listed below.
    Phase(PhaseArgs),
}

#[derive(Debug, Args)]
pub struct PhaseArgs {
    /// The phase, as `--skip-phases` names it.
    #[arg(value_name = "NAME")]
    pub name: String,
    #[command(flatten)]
    pub run: RunArgs,
}

/// `boot init phase --help`'s list: every phase of init with its summary.
pub fn phase_help() -> String {
    let mut text = String::from("Phases:\n");
    for name in phases::names(&PHASES) {
        let summary = PHASES
            .iter()
            .find(|p| p.name() == name)
            .map(|p| p.summary())
            .unwrap_or("all of the phases below it");
        let aliases = PHASES
            .iter()
            .find(|p| p.name() == name)
            .map(|p| p.aliases())
            .unwrap_or_default();
        let aka = match aliases {
            [] => String::new(),
            names => format!(" (also: {})", names.join(", ")),
        };
        text.push_str(&format!("  {name:<34} {summary}{aka}\n"));
    }
    text
}

pub fn run(args: InitArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    match args.command {
        Some(InitCommand::Phase(phase)) => run_phases(phase.run, Some(&phase.name), global),
        None => run_phases(args.run, None, global),
    }
}

/// `boot init`, or `boot init phase NAME` (`only`): the selected phases through the runner.
fn run_phases(
    args: RunArgs,
    only: Option<&str>,
    global: &GlobalArgs,
) -> Result<ExitCode, CliError> {
    let started = Instant::now();
    let root = global.host_root()?;
    let cfg = load::load(global, &args.config)?;
    load::print_warnings(&cfg.warnings);
    let templates = Templates::with_overrides(cfg.boot.templates_dir.as_deref())
        .map_err(output::render_error)?;
    let selection = match only {
        Some(name) => Selection::only(name, &PHASES).map_err(|e| {
            CliError::usage(
                format!("boot init phase: {e}"),
                "see `boot init phase --help`",
            )
        })?,
        None => {
            Selection::skip(&args.skip_phases, &cfg.init.skip_phases, &PHASES).map_err(|e| {
                CliError::usage(
                    format!("--skip-phases: {e}"),
                    "see `boot init phase --help`",
                )
            })?
        }
    };
    let mut ignore = args.ignore_preflight_errors.clone();
    ignore.extend(
        cfg.init
            .node_registration
            .ignore_preflight_errors
            .iter()
            .cloned(),
    );
    let exe = std::env::current_exe().map_err(|e| {
        CliError::new(ExitCode::Files, "cannot find the boot executable").with_cause(e)
    })?;
    let dry_run = args.dry_run || cfg.init.dry_run;
    let request = InitRequest {
        dry_run,
        ignore_preflight: ignore,
        agent_mode: args.agent.unwrap_or(cfg.boot.agent.mode),
        exe,
        live: std::io::stdout().is_terminal(),
        pull_images: args.pull_images || cfg.boot.runtime == crate::config::RuntimeKind::Oci,
        join: super::join_data::join_data(&args.join, &cfg)?,
        start_foreground: Some(Box::new(start_foreground) as Box<StartForeground>),
        root: root.clone(),
        templates,
        cfg,
    };
    if only.is_none() {
        println!(
            "[init] Using Kubernetes version: v{} (etcd {})",
            request.cfg.kubernetes_version, request.cfg.etcd_version
        );
    }
    let runtime = super::async_runtime(2)?;
    runtime.block_on(async {
        let mut ctx = InitContext::new(request, &selection, Box::new(std::io::stdout()))
            .map_err(|e| init_error(e, &root))?;
        let report = phases::run(&PHASES, &mut ctx, &selection, dry_run)
            .await
            .map_err(|failed| {
                let mut error = init_error(failed.error, &root);
                error.headline = format!("phase {}: {}", failed.phase, error.headline);
                error
            })?;
        if dry_run {
            println!("[dry-run] Nothing was written.");
            return Ok(ExitCode::Ok);
        }
        if !report.ran.is_empty() {
            println!("[init] Phases took: {}", report.timings());
        }
        let request = &ctx.request;
        if only.is_none() {
            print_finish(&root, started.elapsed());
        }
        if selection.selects("bootstrap-token") {
            if let Some(text) = super::join_data::join_commands(&request.cfg, &root, &request.join)
            {
                println!("\n{text}");
            }
        }
        match ctx.foreground.take() {
            Some(foreground) => wait_foreground(foreground).await,
            None => Ok(ExitCode::Ok),
        }
    })
}

/// `--agent=foreground`: the agent and its certificate renewal in this process, stopped by
/// SIGTERM or SIGINT.
fn start_foreground(
    cfg: &Config,
    root: &HostRoot,
) -> Result<ForegroundAgent, crate::init::context::BoxedError> {
    let options = crate::agent::AgentOptions::from_config(root.clone(), cfg)?;
    let renewal = super::agent::auto_renewal(cfg, root, &options.status_socket);
    Ok(ForegroundAgent {
        renewal: tokio::spawn(crate::certs::auto::run(renewal)),
        agent: tokio::spawn(crate::agent::run(options, super::shutdown_signal())),
    })
}

async fn wait_foreground(foreground: ForegroundAgent) -> Result<ExitCode, CliError> {
    println!("[agent] Running in the foreground; Ctrl-C stops the agent (the pods keep running)");
    let ended = foreground.agent.await;
    foreground.renewal.abort();
    if let Ok(Err(e)) = ended {
        return Err(CliError::new(ExitCode::AgentDown, "the agent stopped").with_cause(e));
    }
    Ok(ExitCode::Ok)
}

fn print_finish(root: &HostRoot, took: std::time::Duration) {
    let admin = crate::init::admin_conf(root);
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

pub(super) fn init_error(err: InitError, root: &HostRoot) -> CliError {
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
        InitError::Foreground(e) => match e.downcast::<CliError>() {
            Ok(cli) => *cli,
            Err(e) => CliError::new(ExitCode::AgentDown, format!("cannot start the agent: {e}")),
        },
        InitError::PostBoot(e) => {
            let hint = e.hint().map(|h| format!("{h}; ")).unwrap_or_default();
            CliError::new(ExitCode::Timeout, e.to_string()).with_hint(format!(
                "{hint}`boot init phase upload-config{root_flag}` retries it once the API server answers; {reset}"
            ))
        }
        InitError::Mark(e) => CliError::new(ExitCode::Timeout, e.to_string()).with_hint(format!(
            "{}; `boot init phase mark-control-plane{root_flag}` retries it; {reset}",
            e.hint()
        )),
        other => CliError::new(ExitCode::Files, other.to_string()).with_hint(reset),
    }
}
