//! kubeadm's `wait-control-plane`: every component whose manifest is in place answers on its own
//! health endpoint, or the wait ends early with a diagnosis (`crate::controlplane::wait`).

use crate::controlplane::wait;
use crate::init::context::{InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct WaitControlPlane;

impl Phase<InitContext> for WaitControlPlane {
    fn name(&self) -> &'static str {
        "wait-control-plane"
    }
    fn summary(&self) -> &'static str {
        "Wait until every control plane component is healthy"
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let InitContext {
                request,
                layout,
                out,
                ..
            } = ctx;
            let timeout = request
                .cfg
                .init
                .timeouts
                .control_plane_component_health_check
                .0;
            wait::control_plane_check(
                &request.cfg,
                &request.root,
                layout,
                timeout,
                request.live,
                out,
            )
            .await
            .map(|_| ())
            .map_err(InitError::Wait)
        })
    }
}
