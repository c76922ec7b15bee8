//! kubeadm's `control-plane/{apiserver,controller-manager,scheduler}`: one static pod manifest
//! each (the API server's with its encryption and audit files), written into the manifest
//! directory the agent watches. One phase per component, so that init can write each when what
//! it needs is there; [`StaticPod`] is the etcd phase's shape too.

use crate::init::context::{would_write, InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

/// The phase that writes `component`'s manifest.
pub struct StaticPod {
    pub name: &'static str,
    pub component: &'static str,
    pub summary: &'static str,
}

pub const APISERVER: StaticPod = StaticPod {
    name: "control-plane/apiserver",
    component: "kube-apiserver",
    summary: "Write the kube-apiserver manifest (and its encryption and audit files)",
};
pub const CONTROLLER_MANAGER: StaticPod = StaticPod {
    name: "control-plane/controller-manager",
    component: "kube-controller-manager",
    summary: "Write the kube-controller-manager manifest",
};
pub const SCHEDULER: StaticPod = StaticPod {
    name: "control-plane/scheduler",
    component: "kube-scheduler",
    summary: "Write the kube-scheduler manifest",
};

impl Phase<InitContext> for StaticPod {
    fn name(&self) -> &'static str {
        self.name
    }
    fn summary(&self) -> &'static str {
        self.summary
    }
    fn dry_run(&self, ctx: &InitContext) -> Vec<String> {
        match ctx.rendered.manifest(self.component) {
            Some(bundle) if !bundle.files.is_empty() => would_write(&bundle.files),
            _ => vec![format!(
                "Nothing to write for {} (external etcd)",
                self.component
            )],
        }
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let Some(bundle) = ctx.rendered.manifest(self.component) else {
                return Ok(());
            };
            let lines = crate::render::progress_lines(bundle, &ctx.layout);
            let files = bundle.files.clone();
            for line in lines {
                ctx.say(line);
            }
            ctx.write(&files)
        })
    }
}
