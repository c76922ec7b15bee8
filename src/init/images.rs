//! init's `[preflight] Pulling images required for setting up a Kubernetes cluster` step: the
//! images of the static pods init writes, pulled in parallel into `/var/lib/boot/images` unless
//! present (kubeadm's `ImagePullCheck` pulls only what `crictl inspecti` does not find).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::host::HostRoot;
use crate::image::{ImageError, ImageRef, PullPolicy, Quiet, Registries, Store};

/// The images of the static pods `boot init` writes: etcd (when local) and the three
/// control-plane components. kubeadm also lists coredns, kube-proxy and pause, which boot does
/// not run.
pub fn init_images(cfg: &Config) -> Vec<String> {
    let mut images = Vec::new();
    if cfg.local_etcd().is_some() {
        images.push(cfg.etcd_image());
    }
    for component in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        images.push(cfg.component_image(component));
    }
    images
}

/// Pulls every init image that is not present, printing kubeadm's lines; the first failure is
/// returned after all pulls ended.
pub async fn pull_step(
    cfg: &Config,
    root: &HostRoot,
    out: &mut dyn Write,
) -> Result<(), ImageError> {
    let _ = writeln!(
        out,
        "[preflight] Pulling images required for setting up a Kubernetes cluster"
    );
    let _ = writeln!(
        out,
        "[preflight] This might take a minute or two, depending on the speed of your internet connection"
    );
    let _ = writeln!(
        out,
        "[preflight] You can also perform this action beforehand using 'boot images pull'"
    );
    let images = init_images(cfg)
        .iter()
        .map(|i| i.parse::<ImageRef>())
        .collect::<Result<Vec<_>, _>>()?;
    let store = Store::open(root)?;
    let registries = Registries::load(&cfg.boot.registries, root)?;
    for warning in registries.warnings() {
        let _ = writeln!(out, "[preflight] WARNING: {warning}");
    }
    let pulls = images.iter().map(|image| {
        let (store, registries) = (&store, &registries);
        async move {
            let started = Instant::now();
            let result = store
                .ensure(image, PullPolicy::IfNotPresent, registries, Arc::new(Quiet))
                .await;
            (image, result, started.elapsed())
        }
    });
    let mut first_error = None;
    for (image, result, took) in futures::future::join_all(pulls).await {
        match result {
            Ok(local) => {
                let _ = writeln!(
                    out,
                    "[preflight] Image {image} ready ({}, {took:.1?})",
                    local.manifest_digest
                );
            }
            Err(e) => {
                let _ = writeln!(out, "[preflight] Failed to pull {image}: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
