//! The API objects of kubeadm's `bootstrap-token` and `upload-certs` phases and of its
//! `upload-config/kubelet` step, built as kubeadm builds them (`phases/bootstraptoken/node`,
//! `phases/bootstraptoken/clusterinfo`, `phases/copycerts`, `phases/uploadconfig`): the RBAC that
//! lets bootstrap tokens join nodes, the anonymous read of `cluster-info`, the token read of
//! `kubeadm-certs`, and `kube-system/kubelet-config` that `kubeadm join` reads. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use super::objects::{group, meta, BOOTSTRAP_TOKEN_GROUP, KUBE_SYSTEM, NODES_GROUP, RBAC_GROUP};
use crate::config::Config;
use crate::join::cluster_info::{CLUSTER_INFO, KUBE_PUBLIC};
use crate::join::upload_certs::{KUBEADM_CERTS, KUBEADM_CERTS_ROLE};

/// kubeadm's `NodeKubeletBootstrap`: bootstrap tokens may create CSRs.
pub const KUBELET_BOOTSTRAP: &str = "kubeadm:kubelet-bootstrap";
/// kubeadm's `NodeAutoApproveBootstrapClusterRoleBinding`.
pub const NODE_AUTOAPPROVE_BOOTSTRAP: &str = "kubeadm:node-autoapprove-bootstrap";
/// kubeadm's `NodeAutoApproveCertificateRotationClusterRoleBinding`.
pub const NODE_AUTOAPPROVE_ROTATION: &str = "kubeadm:node-autoapprove-certificate-rotation";
/// kubeadm's `GetNodesClusterRoleName`: `kubeadm join` checks for a Node of its name.
pub const GET_NODES: &str = "kubeadm:get-nodes";
/// kubeadm's `BootstrapSignerClusterRoleName`: anonymous may read `cluster-info`.
pub const CLUSTER_INFO_ROLE: &str = "kubeadm:bootstrap-signer-clusterinfo";
/// kubeadm's `KubeletBaseConfigurationConfigMap` and its key.
pub const KUBELET_CONFIG: &str = "kubelet-config";
pub const KUBELET_CONFIG_KEY: &str = "kubelet";
/// kubeadm's `KubeletBaseConfigMapRole`.
pub const KUBELET_CONFIG_ROLE: &str = "kubeadm:kubelet-config";
/// `user.Anonymous`.
const ANONYMOUS: &str = "system:anonymous";

fn role_ref(kind: &str, name: &str) -> RoleRef {
    RoleRef {
        api_group: Some(RBAC_GROUP.into()),
        kind: kind.into(),
        name: name.into(),
    }
}

fn cluster_binding(name: &str, cluster_role: &str, subject: Subject) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: role_ref("ClusterRole", cluster_role),
        subjects: Some(vec![subject]),
    }
}

/// `get` on one named core-group object.
fn get_only(resource: &str, name: Option<&str>) -> PolicyRule {
    PolicyRule {
        verbs: vec!["get".into()],
        api_groups: Some(vec![String::new()]),
        resources: Some(vec![resource.into()]),
        resource_names: name.map(|n| vec![n.to_string()]),
        non_resource_urls: None,
    }
}

fn role(name: &str, namespace: &str, rule: PolicyRule) -> Role {
    Role {
        metadata: meta(name, Some(namespace)),
        rules: Some(vec![rule]),
    }
}

fn role_binding(name: &str, namespace: &str, subjects: Vec<Subject>) -> RoleBinding {
    RoleBinding {
        metadata: meta(name, Some(namespace)),
        role_ref: role_ref("Role", name),
        subjects: Some(subjects),
    }
}

/// The three ClusterRoleBindings of `bootstrap-token`: tokens post CSRs, their CSRs are approved,
/// and nodes' renewal CSRs are approved.
pub fn node_bootstrap_bindings() -> [ClusterRoleBinding; 3] {
    [
        cluster_binding(
            KUBELET_BOOTSTRAP,
            "system:node-bootstrapper",
            group(BOOTSTRAP_TOKEN_GROUP),
        ),
        cluster_binding(
            NODE_AUTOAPPROVE_BOOTSTRAP,
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            group(BOOTSTRAP_TOKEN_GROUP),
        ),
        cluster_binding(
            NODE_AUTOAPPROVE_ROTATION,
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            group(NODES_GROUP),
        ),
    ]
}

/// `AllowBootstrapTokensToGetNodes`: ClusterRole and binding `kubeadm:get-nodes`.
pub fn get_nodes() -> (ClusterRole, ClusterRoleBinding) {
    let role = ClusterRole {
        metadata: meta(GET_NODES, None),
        rules: Some(vec![get_only("nodes", None)]),
        aggregation_rule: None,
    };
    let binding = cluster_binding(GET_NODES, GET_NODES, group(BOOTSTRAP_TOKEN_GROUP));
    (role, binding)
}

/// `CreateClusterInfoRBACRules`: `system:anonymous` may get `kube-public/cluster-info`.
pub fn cluster_info_rbac() -> (Role, RoleBinding) {
    let anonymous = Subject {
        kind: "User".into(),
        name: ANONYMOUS.into(),
        api_group: Some(RBAC_GROUP.into()),
        namespace: None,
    };
    (
        role(
            CLUSTER_INFO_ROLE,
            KUBE_PUBLIC,
            get_only("configmaps", Some(CLUSTER_INFO)),
        ),
        role_binding(CLUSTER_INFO_ROLE, KUBE_PUBLIC, vec![anonymous]),
    )
}

/// copycerts' `createRBAC`: bootstrap tokens may get `kube-system/kubeadm-certs`.
pub fn kubeadm_certs_rbac() -> (Role, RoleBinding) {
    (
        role(
            KUBEADM_CERTS_ROLE,
            KUBE_SYSTEM,
            get_only("secrets", Some(KUBEADM_CERTS)),
        ),
        role_binding(
            KUBEADM_CERTS_ROLE,
            KUBE_SYSTEM,
            vec![group(BOOTSTRAP_TOKEN_GROUP)],
        ),
    )
}

/// `kube-system/kubelet-config` (key `kubelet`) and the Role/RoleBinding that let nodes and
/// bootstrap tokens read it. The KubeletConfiguration is the one kubeadm uploads for the
/// cluster's kubelets (its defaults with this cluster's DNS address, domain and CA path), not
/// boot's own agent file, which may live under `--root`.
pub fn kubelet_config(cfg: &Config) -> (ConfigMap, Role, RoleBinding) {
    let config_map = ConfigMap {
        metadata: meta(KUBELET_CONFIG, Some(KUBE_SYSTEM)),
        data: Some(BTreeMap::from([(
            KUBELET_CONFIG_KEY.to_string(),
            kubelet_configuration(cfg),
        )])),
        ..ConfigMap::default()
    };
    (
        config_map,
        role(
            KUBELET_CONFIG_ROLE,
            KUBE_SYSTEM,
            get_only("configmaps", Some(KUBELET_CONFIG)),
        ),
        role_binding(
            KUBELET_CONFIG_ROLE,
            KUBE_SYSTEM,
            vec![group(NODES_GROUP), group(BOOTSTRAP_TOKEN_GROUP)],
        ),
    )
}

/// kubeadm's defaulted KubeletConfiguration (`componentconfigs/kubelet.go` `Default`): webhook
/// authentication and authorization, client CA `<certificatesDir>/ca.crt`, cluster DNS at the
/// 10th address of the service subnet, systemd cgroups, certificate rotation, healthz on
/// loopback, the static pod path.
pub fn kubelet_configuration(cfg: &Config) -> String {
    let ca = cfg.cert_dir().join("ca.crt");
    format!(
        "apiVersion: kubelet.config.k8s.io/v1beta1\nauthentication:\n  anonymous:\n    enabled: false\n  webhook:\n    cacheTTL: 0s\n    enabled: true\n  x509:\n    clientCAFile: {ca}\nauthorization:\n  mode: Webhook\n  webhook:\n    cacheAuthorizedTTL: 0s\n    cacheUnauthorizedTTL: 0s\ncgroupDriver: systemd\nclusterDNS:\n- {dns}\nclusterDomain: {domain}\nhealthzBindAddress: 127.0.0.1\nhealthzPort: 10248\nkind: KubeletConfiguration\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n",
        ca = ca.display(),
        dns = crate::addons::dns_ip(cfg),
        domain = cfg.cluster.networking.dns_domain,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bootstrap_bindings_are_kubeadms() {
        let [csr, approve, rotate] =
            node_bootstrap_bindings().map(|b| serde_json::to_value(b).unwrap());
        assert_eq!(
            csr,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "kubeadm:kubelet-bootstrap"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-bootstrapper"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                    "name": "system:bootstrappers:kubeadm:default-node-token"}]})
        );
        assert_eq!(
            approve["roleRef"]["name"],
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
        );
        assert_eq!(
            rotate["roleRef"]["name"],
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient"
        );
        assert_eq!(rotate["subjects"][0]["name"], "system:nodes");
    }

    #[test]
    fn anonymous_reads_only_cluster_info() {
        let (role, binding) = cluster_info_rbac();
        let role = serde_json::to_value(role).unwrap();
        assert_eq!(
            role["metadata"],
            json!({"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": "kube-public"})
        );
        assert_eq!(
            role["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["cluster-info"]}])
        );
        let binding = serde_json::to_value(binding).unwrap();
        assert_eq!(
            binding["subjects"],
            json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:anonymous"}])
        );
    }

    #[test]
    fn tokens_read_only_kubeadm_certs_and_nodes() {
        let (role, binding) = kubeadm_certs_rbac();
        let role = serde_json::to_value(role).unwrap();
        assert_eq!(role["rules"][0]["resources"], json!(["secrets"]));
        assert_eq!(role["rules"][0]["resourceNames"], json!(["kubeadm-certs"]));
        assert_eq!(binding.role_ref.name, "kubeadm:kubeadm-certs");
        let (nodes, nodes_binding) = get_nodes();
        let nodes = serde_json::to_value(nodes).unwrap();
        assert_eq!(
            nodes["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}])
        );
        assert_eq!(nodes_binding.role_ref.kind, "ClusterRole");
    }
}
