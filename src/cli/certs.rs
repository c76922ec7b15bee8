//! `boot certs check-expiration` and `boot certs renew`: kubeadm's commands, plus what kubeadm
//! leaves to the user — restarting exactly the static pods that use a renewed file, one at a time,
//! each only after the previous is ready again, so a single-node control plane never loses etcd
//! and the API server at once.

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::load::{load, ConfigFlags};
use super::{CliError, ExitCode, GlobalArgs};
use crate::certs::{self, expiry, CertsError, CertsLayout, RenewSettings, Renewable, RestartError};
use crate::config::Config;
use crate::host::HostRoot;

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// kubeadm's expiry tables; exit 1 when a certificate is due for renewal or expired.
    CheckExpiration(CheckArgs),
    /// Re-issue certificates from the local CA, then restart only the pods that use them.
    Renew(RenewArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Output format: the tables (default) or json.
    #[arg(short, long, value_name = "FORMAT", default_value = "table")]
    pub output: String,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

#[derive(Debug, Args)]
pub struct RenewArgs {
    /// kubeadm's names (`apiserver`, `admin.conf`, …) or `all`.
    #[arg(required = true, value_name = "NAME")]
    pub names: Vec<String>,
    /// Renew only; restart the pods yourself.
    #[arg(long)]
    pub no_restart: bool,
    /// How long each restarted pod may take to be ready again.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub timeout: u64,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

pub fn run(command: CertsCommand, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    match command {
        CertsCommand::CheckExpiration(args) => check(args, global),
        CertsCommand::Renew(args) => renew(args, global),
    }
}

fn layout(cfg: &Config, root: &HostRoot) -> CertsLayout {
    CertsLayout {
        cert_dir: root.path(cfg.cert_dir()),
        kubernetes_dir: root.path("/etc/kubernetes"),
        local_etcd: cfg.local_etcd().is_some(),
    }
}

fn certs_error(err: CertsError) -> CliError {
    let hint = match &err {
        CertsError::ExternalCa { .. } => "an external CA signs this certificate: renew it there",
        CertsError::Unknown { .. } => "`boot certs check-expiration` lists the names",
        _ => "check the certificate directory (`--cert-dir`, `--root`)",
    };
    CliError::new(ExitCode::Files, err.to_string()).with_hint(hint)
}

fn check(args: CheckArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let cfg = load(global, &args.flags)?;
    let report = certs::check_expiration(&layout(&cfg, &root)).map_err(certs_error)?;
    let now = certs::unix(SystemTime::now());
    let renew_before = cfg.boot.certificates.renew_before.map(|d| d.0);
    match args.output.as_str() {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        ),
        "table" => {
            for name in &report.missing {
                println!("!MISSING! {name}");
            }
            print!(
                "{}",
                expiry::render_tables(&report.certificates, &report.certificate_authorities, now)
            );
        }
        other => {
            return Err(CliError::usage(
                format!("-o {other}: unknown output format"),
                "use -o json or the default table",
            ))
        }
    }
    let leaves_due = report
        .certificates
        .iter()
        .filter(|row| row.leaf_standing(now, renew_before) != expiry::Standing::Valid);
    let cas_due = report
        .certificate_authorities
        .iter()
        .filter(|row| row.ca_standing(now) != expiry::Standing::Valid);
    let due: Vec<&str> = leaves_due.chain(cas_due).map(|r| r.name.as_str()).collect();
    if due.is_empty() && report.missing.is_empty() {
        return Ok(ExitCode::Ok);
    }
    if !due.is_empty() {
        eprintln!(
            "W [check-expiration] due for renewal or expired: {}; run `boot certs renew NAME`",
            due.join(", ")
        );
    }
    Ok(ExitCode::Unhealthy)
}

fn renew(args: RenewArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let cfg = load(global, &args.flags)?;
    let layout = layout(&cfg, &root);
    let selected = certs::select(layout.local_etcd, &args.names).map_err(certs_error)?;
    let settings = RenewSettings {
        algorithm: cfg.cluster.encryption_algorithm,
        validity: cfg.cluster.certificate_validity_period.0,
        now: SystemTime::now(),
    };
    let mut changed = Vec::new();
    for item in &selected {
        let not_after = certs::renew(&layout, item, settings).map_err(certs_error)?;
        println!(
            "[renew] {} renewed, valid until {}",
            describe(item),
            expiry::expires(not_after)
        );
        changed.push(item.changed_file(&layout));
    }
    println!("\nDone renewing certificates.");
    if args.no_restart {
        println!(
            "Restart the static pods that use them yourself (--no-restart); `boot certs renew` \
             without it restarts exactly those, one at a time."
        );
        return Ok(ExitCode::Ok);
    }
    let manifests = certs::read_manifests(&root.path(&cfg.static_pod_path));
    let affected = certs::affected_pods(&manifests, &changed);
    if affected.is_empty() {
        println!("No static pod uses the renewed files: nothing to restart.");
        return Ok(ExitCode::Ok);
    }
    certs::hot_reload::take_renewed(
        &root.path("/run/boot/agent.sock"),
        &manifests,
        affected,
        &changed,
        Duration::from_secs(args.timeout),
        &mut |line| println!("[renew] {line}"),
    )
    .map(|()| ExitCode::Ok)
    .map_err(|e| match e {
        RestartError::Manifest { .. } => CliError::new(ExitCode::Files, e.to_string())
            .with_hint("restart the pod by hand, or run `boot certs renew` again"),
        RestartError::NotReady { ref pod, .. } => {
            let hint = format!(
                "`boot status` and `boot logs {pod}` say why; the remaining pods were not restarted"
            );
            CliError::new(ExitCode::Timeout, e.to_string()).with_hint(hint)
        }
    })
}

fn describe(item: &Renewable) -> String {
    match item {
        Renewable::Leaf { name, file, .. } => format!("certificate {name} ({file}.crt)"),
        Renewable::Kubeconfig { name } => format!("certificate embedded in {name}"),
    }
}
