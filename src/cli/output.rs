//! Writing rendered files and reporting them kubeadm-style (`[certs] …`, `[kubeconfig] …`,
//! `[control-plane] …`).

use super::{CliError, ExitCode};
use crate::host::{self, RenderedFile};
use crate::render::{OutputLayout, RenderError};

pub fn render_error(err: RenderError) -> CliError {
    let hint = err.hint();
    let mut cli = CliError::new(ExitCode::Files, err.to_string());
    if let Some(source) = std::error::Error::source(&err) {
        let source = source.to_string();
        if !cli.headline.contains(&source) {
            cli.headline = format!("{}: {source}", cli.headline);
        }
    }
    cli.hint = hint;
    cli
}

pub fn write(files: &[RenderedFile]) -> Result<(), CliError> {
    host::write_all(files).map_err(|err| {
        CliError::new(
            ExitCode::Files,
            format!("cannot write {}: {}", err.path.display(), err.source),
        )
        .with_hint("check that the directory is writable (nothing was written)")
    })
}

/// One line per file, in kubeadm's phase style.
pub fn report(files: &[RenderedFile], layout: &OutputLayout) {
    for file in files {
        let path = file.path.display();
        let name = file
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file.path.starts_with(&layout.manifest_dir) {
            println!("[control-plane] Wrote static Pod manifest for {name:?} to {path}");
        } else if file.path.starts_with(&layout.cert_dir) {
            println!("[certs] Wrote {path}");
        } else {
            println!("[kubeconfig] Wrote {path}");
        }
    }
}
