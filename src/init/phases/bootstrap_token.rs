//! kubeadm's `bootstrap-token`: the bootstrap tokens, their RBAC, `kube-system/kubelet-config`
//! and the signed `kube-public/cluster-info` (`crate::postboot::bootstrap_token`).

use crate::init::context::{InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct BootstrapToken;

impl Phase<InitContext> for BootstrapToken {
    fn name(&self) -> &'static str {
        "bootstrap-token"
    }
    fn summary(&self) -> &'static str {
        "Create the bootstrap token, its RBAC, kubelet-config and the signed cluster-info"
    }
    fn dry_run(&self, ctx: &InitContext) -> Vec<String> {
        let mut lines: Vec<String> = ctx
            .request
            .join
            .tokens
            .iter()
            .map(|spec| format!("Would create bootstrap token {}", spec.token.id()))
            .collect();
        lines.push("Would publish the signed kube-public/cluster-info".into());
        lines
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let tokens = crate::postboot::BootstrapTokens {
                tokens: &ctx.request.join.tokens,
                now: k8s_openapi::jiff::Timestamp::now(),
            };
            let timeout = ctx.api_timeout();
            let lines = crate::postboot::bootstrap_token(
                &ctx.layout.kubernetes_dir,
                &ctx.request.cfg,
                tokens,
                timeout,
            )
            .await?;
            for line in lines {
                ctx.say(line);
            }
            Ok(())
        })
    }
}
