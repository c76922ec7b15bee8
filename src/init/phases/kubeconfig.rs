//! kubeadm's `kubeconfig`: admin.conf, super-admin.conf, controller-manager.conf and
//! scheduler.conf, their client certificates signed by the cluster CA (issued by the certs
//! phase, or already on disk).

use crate::init::context::{would_write, InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct Kubeconfig;

impl Phase<InitContext> for Kubeconfig {
    fn name(&self) -> &'static str {
        "kubeconfig"
    }
    fn summary(&self) -> &'static str {
        "Write admin.conf, super-admin.conf, controller-manager.conf and scheduler.conf"
    }
    fn dry_run(&self, ctx: &InitContext) -> Vec<String> {
        would_write(&ctx.rendered.kubeconfigs.files)
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let bundle = &ctx.rendered.kubeconfigs;
            let lines = crate::render::progress_lines(bundle, &ctx.layout);
            let files = bundle.files.clone();
            for line in lines {
                ctx.say(line);
            }
            ctx.write(&files)
        })
    }
}
