//! kubeadm's `preflight`: the node checks (`crate::preflight`), then the control-plane images
//! pulled when the agent's runtime runs images. Only reads (but for the pull), so it runs in a
//! dry run too and fails it where init would fail.

use crate::init::context::{InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct Preflight;

impl Phase<InitContext> for Preflight {
    fn name(&self) -> &'static str {
        "preflight"
    }
    fn summary(&self) -> &'static str {
        "Run the pre-flight checks (and pull the control-plane images)"
    }
    fn runs_in_dry_run(&self) -> bool {
        true
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            ctx.say("[preflight] Running pre-flight checks");
            let request = &ctx.request;
            let report =
                crate::preflight::run(&request.cfg, &request.root, &request.ignore_preflight);
            if !report.errors.is_empty() {
                return Err(InitError::Preflight(report));
            }
            if !report.warnings.is_empty() {
                ctx.say(report.to_string());
            }
            if ctx.request.pull_images && !ctx.request.dry_run {
                let (cfg, root) = (&ctx.request.cfg, &ctx.request.root);
                crate::init::images::pull_step(cfg, root, &mut ctx.out).await?;
            }
            Ok(())
        })
    }
}
