//! kubeadm's `mark-control-plane` (part of what `post-boot` did): once the agent registered the
//! Node with kubelet.conf, the control-plane labels and taint, set with admin.conf
//! (`crate::node::mark`).

use crate::init::context::{InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct MarkControlPlane;

impl Phase<InitContext> for MarkControlPlane {
    fn name(&self) -> &'static str {
        "mark-control-plane"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["post-boot"]
    }
    fn summary(&self) -> &'static str {
        "Label and taint the Node as a control-plane node"
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let kubernetes_dir = ctx.layout.kubernetes_dir.clone();
            // The agent registers the Node with kubelet.conf; without it there is none to mark.
            if !kubernetes_dir.join(crate::node::KUBELET_CONF).exists() {
                return Ok(());
            }
            let timeout = ctx.api_timeout();
            let node = ctx.request.cfg.node_name.clone();
            let lines =
                crate::node::mark::mark_control_plane(&kubernetes_dir, &node, timeout).await?;
            for line in lines {
                ctx.say(line);
            }
            Ok(())
        })
    }
}
