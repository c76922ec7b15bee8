//! kubeadm's `upload-certs`: with `--upload-certs` only, the shared certificates encrypted with
//! the certificate key in `kube-system/kubeadm-certs`, and the key printed.

use crate::init::context::{InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct UploadCerts;

impl Phase<InitContext> for UploadCerts {
    fn name(&self) -> &'static str {
        "upload-certs"
    }
    fn summary(&self) -> &'static str {
        "Upload the shared certificates, encrypted, to Secret kube-system/kubeadm-certs (with \
         --upload-certs) and print the key"
    }
    fn dry_run(&self, ctx: &InitContext) -> Vec<String> {
        match ctx.request.join.certificate_key {
            Some(_) => vec![
                "Would upload the shared certificates to Secret kube-system/kubeadm-certs".into(),
            ],
            None => vec!["Nothing to upload without --upload-certs".into()],
        }
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let Some(key) = ctx.request.join.certificate_key.clone() else {
                ctx.say("[upload-certs] Skipping phase. Please see --upload-certs");
                return Ok(());
            };
            let timeout = ctx.api_timeout();
            let lines = crate::postboot::upload_certs(
                &ctx.layout.kubernetes_dir,
                &ctx.layout.cert_dir,
                &ctx.request.root,
                &ctx.request.cfg,
                &key,
                timeout,
            )
            .await?;
            for line in lines {
                ctx.say(line);
            }
            ctx.say(format!("[upload-certs] Using certificate key:\n{key}"));
            Ok(())
        })
    }
}
