//! kubeadm's `certs`: the cluster CAs, the leaf certificates and the service-account key pair
//! under the certificate directory (rendered before any phase ran).

use crate::init::context::{would_write, InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct Certs;

impl Phase<InitContext> for Certs {
    fn name(&self) -> &'static str {
        "certs"
    }
    fn summary(&self) -> &'static str {
        "Generate the certificate authorities, certificates and the service-account key pair"
    }
    fn dry_run(&self, ctx: &InitContext) -> Vec<String> {
        would_write(&ctx.rendered.certs.files)
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let bundle = &ctx.rendered.certs;
            let lines = crate::render::progress_lines(bundle, &ctx.layout);
            let files = bundle.files.clone();
            for line in lines {
                ctx.say(line);
            }
            ctx.write(&files)
        })
    }
}
