//! `boot secrets rotate-key`: a new encryption-at-rest key, every Secret (and ConfigMap when
//! configured) re-written with it, the old key dropped — resumable from its journal.

use std::time::Instant;

use clap::{Args, Subcommand};

use super::load::{load, ConfigFlags};
use super::{CliError, ExitCode, GlobalArgs};
use crate::secrets::{journal, Reload, Rotation, SecretsError};

#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Replace the encryption-at-rest key: add it, write with it, re-write everything, drop the
    /// old one. Run it again to continue an interrupted rotation.
    RotateKey(RotateArgs),
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// Restart the API server to load each step instead of waiting for its automatic reload
    /// (up to a minute per step, no outage); a restart takes about 15 s without the API.
    #[arg(long)]
    pub restart: bool,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

pub fn run(command: SecretsCommand, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    match command {
        SecretsCommand::RotateKey(args) => rotate_key(args, global),
    }
}

fn rotate_key(args: RotateArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let cfg = load(global, &args.flags)?;
    let rotation = Rotation::from_manifests(
        &root.path(&cfg.static_pod_path),
        root.path("/etc/kubernetes/admin.conf"),
        root.path(journal::JOURNAL_FILE),
        root.path("/run/boot/agent.sock"),
        args.restart,
    )
    .map_err(secrets_error)?;
    println!(
        "[rotate-key] {} (loaded by {})",
        rotation.config_path.display(),
        match rotation.reload {
            Reload::Automatic => "the API server's automatic reload",
            Reload::Restart => "restarting the API server",
        }
    );
    let runtime = super::async_runtime(0)?;
    let started = Instant::now();
    let new = runtime
        .block_on(rotation.run(&mut |line| println!("[rotate-key] {line}")))
        .map_err(secrets_error)?;
    println!(
        "\nThe encryption key is now {new} (rotated in {:.1}s). Keep a copy of {} somewhere safe.",
        started.elapsed().as_secs_f64(),
        rotation.config_path.display()
    );
    Ok(ExitCode::Ok)
}

fn secrets_error(err: SecretsError) -> CliError {
    let (code, hint) = match &err {
        SecretsError::NoApiServer { .. } => (
            ExitCode::Files,
            "run `boot init` first (or pass the --config it used)",
        ),
        SecretsError::NotConfigured { .. } => (
            ExitCode::Usage,
            "encryption at rest is off (BootConfiguration encryptionAtRest.enabled: false): there \
             is no key to rotate",
        ),
        SecretsError::Flag { .. } | SecretsError::Config { .. } => (
            ExitCode::Files,
            "boot rotates the secretbox/aescbc/aesgcm keys of secrets and configmaps; fix the \
             file or rotate by hand",
        ),
        SecretsError::File { .. } | SecretsError::Journal { .. } => (
            ExitCode::Files,
            "nothing was lost: fix the file and run `boot secrets rotate-key` again to continue",
        ),
        SecretsError::Changed { .. } => (
            ExitCode::Files,
            "put the file back as the rotation left it, or remove the journal and check the file \
             decrypts everything in etcd before starting again",
        ),
        SecretsError::SeveralApiServers { .. } => (
            ExitCode::Usage,
            "nothing was changed; with several control-plane nodes, follow Kubernetes' rotation \
             procedure by hand, each step on every node's encryption configuration before the \
             next (kubernetes.io/docs/tasks/administer-cluster/encrypt-data/)",
        ),
        SecretsError::Api(_) | SecretsError::NotLoaded { .. } => (
            ExitCode::Timeout,
            "check `boot status` and `boot logs kube-apiserver`; `boot secrets rotate-key` \
             continues where it stopped",
        ),
        SecretsError::Etcd(_) => (
            ExitCode::Timeout,
            "check `boot status` and `boot logs etcd`; `boot secrets rotate-key` continues where \
             it stopped",
        ),
        SecretsError::Restart(_) => (
            ExitCode::AgentDown,
            "check `boot status`; `boot secrets rotate-key` continues where it stopped",
        ),
        SecretsError::Stragglers { .. } => (
            ExitCode::Unhealthy,
            "the old key is kept; run `boot secrets rotate-key` again to re-write and check again",
        ),
    };
    CliError::new(code, err.to_string()).with_hint(hint)
}
