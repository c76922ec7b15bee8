//! kubeadm's `upload-config` (part of what `post-boot` did): first kubeadm's hidden
//! `EnsureAdminClusterRoleBinding` (without it admin.conf has no rights), then the
//! ClusterConfiguration in `kube-system/kubeadm-config` and the RBAC that lets joining nodes read
//! it (`crate::postboot`).

use crate::init::context::{InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct UploadConfig;

impl Phase<InitContext> for UploadConfig {
    fn name(&self) -> &'static str {
        "upload-config"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["post-boot"]
    }
    fn summary(&self) -> &'static str {
        "Bind kubeadm:cluster-admins and upload the ClusterConfiguration (idempotent)"
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let timeout = ctx.api_timeout();
            let lines = crate::postboot::run(
                &ctx.layout.kubernetes_dir,
                &ctx.request.cfg.cluster,
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
