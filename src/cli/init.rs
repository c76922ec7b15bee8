//! `boot init phase <name>`: one phase of `boot init` on its own, writing to the real paths (or
//! under `--root`).

use std::time::SystemTime;

use clap::{Args, Subcommand};

use super::load::{self, ConfigFlags};
use super::output;
use super::{CliError, ExitCode, GlobalArgs};
use crate::render::{self, OutputLayout, Parts, Templates, COMPONENTS};

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(subcommand)]
    pub command: InitCommand,
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
}

#[derive(Debug, Args)]
pub struct PhaseArgs {
    #[command(flatten)]
    pub config: ConfigFlags,
}

pub fn run(args: InitArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let InitCommand::Phase { phase } = args.command;
    let (flags, parts) = match &phase {
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
    output::report(&bundle.files, &layout);
    Ok(ExitCode::Ok)
}
