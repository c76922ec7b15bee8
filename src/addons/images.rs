//! The addons' images and the pod sandbox image, named as kubeadm names them (`images.go`,
//! `constants.go`), and the list `boot images list` prints in `kubeadm config images list`'s
//! order. Pure.

use crate::config::Config;
use crate::version::Version;

/// kubeadm's `DefaultImageRepository`: CoreDNS lives one level deeper there.
const DEFAULT_REPOSITORY: &str = "registry.k8s.io";

/// `CoreDNSVersion` and `PauseVersion` of the kubeadm release of each Kubernetes minor
/// (`cmd/kubeadm/app/constants/constants.go` at each release; v1.36.2's `kubeadm config images
/// list` names coredns v1.14.2 and pause 3.10.2). The nearest entry serves a minor outside the
/// table, as for etcd.
const ADDON_VERSIONS: &[(u64, &str, &str)] = &[
    (31, "v1.11.3", "3.10"),
    (32, "v1.11.3", "3.10"),
    (33, "v1.12.0", "3.10"),
    (34, "v1.12.1", "3.10.1"),
    (35, "v1.13.1", "3.10.1"),
    (36, "v1.14.2", "3.10.2"),
];

fn versions_for(kubernetes: &Version) -> (&'static str, &'static str) {
    let nearest = ADDON_VERSIONS
        .iter()
        .min_by_key(|(minor, _, _)| minor.abs_diff(kubernetes.minor))
        .expect("the table is not empty");
    (nearest.1, nearest.2)
}

/// kubeadm's `GetDNSImage`: `dns.imageRepository` or `imageRepository`, with the `coredns/` path
/// only under the default repository (where the image was renamed), and `dns.imageTag` or the
/// release's CoreDNS version.
pub fn coredns_image(cfg: &Config) -> String {
    let dns = cfg.cluster.dns.as_ref();
    let mut repository = dns
        .and_then(|d| d.image_repository.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| cfg.cluster.image_repository.clone());
    if repository == DEFAULT_REPOSITORY {
        repository.push_str("/coredns");
    }
    let tag = dns
        .and_then(|d| d.image_tag.clone())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| versions_for(&cfg.kubernetes_version).0.to_string());
    format!("{repository}/coredns:{tag}")
}

/// `<imageRepository>/kube-proxy:<version tag>`.
pub fn kube_proxy_image(cfg: &Config) -> String {
    cfg.component_image("kube-proxy")
}

/// kubeadm's `GetPauseImage`: `<imageRepository>/pause:<PauseVersion>`. The kubelet no longer
/// takes it (containerd's `sandbox_image` names it), but kubeadm lists it and workers pull it.
pub fn pause_image(cfg: &Config) -> String {
    format!(
        "{}/pause:{}",
        cfg.cluster.image_repository,
        versions_for(&cfg.kubernetes_version).1
    )
}

/// Every image of a cluster, in `kubeadm config images list`'s order: the control plane,
/// kube-proxy and CoreDNS (unless disabled), pause, etcd (when local).
pub fn all_images(cfg: &Config) -> Vec<String> {
    let mut images: Vec<String> = [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    .iter()
    .map(|c| cfg.component_image(c))
    .collect();
    images.extend(worker_images(cfg));
    if cfg.local_etcd().is_some() {
        images.push(cfg.etcd_image());
    }
    images
}

/// What a worker's runtime needs: kube-proxy and CoreDNS (unless disabled; either may be placed on
/// any node) and the pod sandbox image.
pub fn worker_images(cfg: &Config) -> Vec<String> {
    let enabled = super::Enabled::of(&cfg.cluster);
    let mut images = Vec::new();
    if enabled.kube_proxy {
        images.push(kube_proxy_image(cfg));
    }
    if enabled.coredns {
        images.push(coredns_image(cfg));
    }
    images.push(pause_image(cfg));
    images
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, HostFacts, Overrides};

    fn cfg(cluster: &str) -> Config {
        let text = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint: {{advertiseAddress: 10.0.0.1}}\nnodeRegistration: {{name: n}}\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n{cluster}"
        );
        let docs = config::parse("c.yaml", &text).unwrap();
        Config::build(docs, &Overrides::default(), &HostFacts::default()).unwrap()
    }

    #[test]
    fn kubeadm_lists_the_same_images_for_v1_36_2() {
        // `kubeadm config images list --kubernetes-version v1.36.2`, less etcd, whose tag boot
        // pairs by minor (kubeadm 1.36.2 names 3.6.8-0).
        let images = all_images(&cfg("kubernetesVersion: v1.36.2\n"));
        assert_eq!(
            images[..6],
            [
                "registry.k8s.io/kube-apiserver:v1.36.2",
                "registry.k8s.io/kube-controller-manager:v1.36.2",
                "registry.k8s.io/kube-scheduler:v1.36.2",
                "registry.k8s.io/kube-proxy:v1.36.2",
                "registry.k8s.io/coredns/coredns:v1.14.2",
                "registry.k8s.io/pause:3.10.2",
            ]
        );
        assert!(images[6].starts_with("registry.k8s.io/etcd:3.6."));
    }

    #[test]
    fn coredns_drops_its_subpath_under_a_custom_repository_and_honours_overrides() {
        let custom = cfg("kubernetesVersion: v1.34.2\nimageRepository: mirror.test/k8s\n");
        assert_eq!(coredns_image(&custom), "mirror.test/k8s/coredns:v1.12.1");
        assert_eq!(pause_image(&custom), "mirror.test/k8s/pause:3.10.1");
        let pinned =
            cfg("kubernetesVersion: v1.34.2\ndns: {imageRepository: dns.test, imageTag: v9.9.9}\n");
        assert_eq!(coredns_image(&pinned), "dns.test/coredns:v9.9.9");
        // A minor past the table takes its nearest entry.
        assert_eq!(
            coredns_image(&cfg("kubernetesVersion: v1.40.0\n")),
            "registry.k8s.io/coredns/coredns:v1.14.2"
        );
    }

    #[test]
    fn disabled_addons_are_not_listed() {
        let off =
            cfg("kubernetesVersion: v1.36.2\ndns: {disabled: true}\nproxy: {disabled: true}\n");
        assert_eq!(worker_images(&off), ["registry.k8s.io/pause:3.10.2"]);
    }
}
