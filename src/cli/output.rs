//! Writing rendered files and reporting them kubeadm-style (`[certs] …`, `[kubeconfig] …`,
//! `[control-plane] …`).

use super::{CliError, ExitCode};
use crate::host::{self, RenderedFile};
use crate::render::{Bundle, OutputLayout, RenderError};

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

/// kubeadm's progress lines for what was written.
pub fn report(bundle: &Bundle, layout: &OutputLayout) {
    for line in crate::render::progress_lines(bundle, layout) {
        println!("{line}");
    }
}
