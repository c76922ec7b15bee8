//! `boot manifests`: generate files only. Never needs root and never touches the host beyond the
//! output directory.

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Args;

use super::load::{self, ConfigFlags};
use super::output;
use super::{CliError, ExitCode, GlobalArgs};
use crate::render::{self, OutputLayout, Parts, Templates, COMPONENTS};

#[derive(Debug, Args)]
pub struct ManifestsArgs {
    /// Write under DIR, laid out as under /etc/kubernetes (DIR/manifests, DIR/pki, DIR/*.conf).
    /// Default with --root: ROOT/etc/kubernetes.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also generate the PKI and the kubeconfigs.
    #[arg(long)]
    pub pki: bool,
    /// Print the manifests as one YAML stream instead of writing files.
    #[arg(long, conflicts_with_all = ["out", "pki"])]
    pub stdout: bool,
    #[command(flatten)]
    pub config: ConfigFlags,
}

pub fn run(args: ManifestsArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let cfg = load::load(global, &args.config)?;
    let templates = Templates::with_overrides(cfg.boot.templates_dir.as_deref())
        .map_err(output::render_error)?;
    let layout = match (&args.out, args.stdout, root.is_system()) {
        (Some(dir), _, _) => OutputLayout::under(dir),
        // Nothing is written with --stdout; the layout only says where existing files would be.
        (None, true, _) | (None, false, false) => OutputLayout::host(&cfg, &root),
        (None, false, true) => {
            return Err(CliError::usage(
                "boot manifests needs --out DIR or --stdout",
                "e.g. `boot manifests --out ./kubernetes`, or --root DIR",
            ))
        }
    };
    let parts = Parts {
        pki: args.pki,
        kubeconfigs: args.pki,
        components: COMPONENTS,
    };
    let bundle = render::bundle(&cfg, &root, &templates, &layout, parts, SystemTime::now())
        .map_err(output::render_error)?;
    load::print_warnings(&bundle.warnings);
    if args.stdout {
        let stream: Vec<String> = bundle
            .files
            .iter()
            .map(|f| String::from_utf8_lossy(&f.bytes).into_owned())
            .collect();
        print!("{}", stream.join("---\n"));
        return Ok(ExitCode::Ok);
    }
    output::write(&bundle.files)?;
    output::report(&bundle, &layout);
    Ok(ExitCode::Ok)
}
