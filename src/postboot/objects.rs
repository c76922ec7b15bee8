//! The API objects post-boot writes, built exactly as kubeadm builds them. Pure: no client, no
//! host paths.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{
    ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::config::ClusterConfiguration;

/// kubeadm's `ClusterAdminsGroupAndClusterRoleBinding`: both the group `admin.conf`'s
/// certificate carries (O=) and the name of the binding that gives it `cluster-admin`.
pub const CLUSTER_ADMINS: &str = "kubeadm:cluster-admins";
/// The built-in ClusterRole the binding points at.
pub const CLUSTER_ADMIN_ROLE: &str = "cluster-admin";
/// `metav1.NamespaceSystem`.
pub const KUBE_SYSTEM: &str = "kube-system";
/// kubeadm's `KubeadmConfigConfigMap`.
pub const KUBEADM_CONFIG: &str = "kubeadm-config";
/// kubeadm's `ClusterConfigurationConfigMapKey`.
pub const CLUSTER_CONFIGURATION_KEY: &str = "ClusterConfiguration";
/// kubeadm's `NodesKubeadmConfigClusterRoleName` (a Role and a RoleBinding, despite the name).
pub const NODES_KUBEADM_CONFIG: &str = "kubeadm:nodes-kubeadm-config";
/// kubeadm's `NodeBootstrapTokenAuthGroup`: bootstrap tokens of joining nodes.
pub const BOOTSTRAP_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// kubeadm's `NodesGroup`.
pub const NODES_GROUP: &str = "system:nodes";
/// `rbac.GroupName`.
pub(crate) const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

pub(crate) fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        ..ObjectMeta::default()
    }
}

pub(crate) fn group(name: &str) -> Subject {
    // kubeadm leaves apiGroup empty and the API server defaults it to rbac's group for Group
    // subjects; sending it explicitly stores the same object.
    Subject {
        kind: "Group".into(),
        name: name.into(),
        api_group: Some(RBAC_GROUP.into()),
        namespace: None,
    }
}

/// `EnsureAdminClusterRoleBinding`'s binding: group `kubeadm:cluster-admins` → `cluster-admin`.
pub fn cluster_admins_binding() -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(CLUSTER_ADMINS, None),
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.into()),
            kind: "ClusterRole".into(),
            name: CLUSTER_ADMIN_ROLE.into(),
        },
        subjects: Some(vec![group(CLUSTER_ADMINS)]),
    }
}

/// `kube-system/kubeadm-config` holding the ClusterConfiguration as YAML (upload-config).
pub fn kubeadm_config(cluster: &ClusterConfiguration) -> Result<ConfigMap, serde_yaml::Error> {
    let yaml = serde_yaml::to_string(cluster)?;
    Ok(ConfigMap {
        metadata: meta(KUBEADM_CONFIG, Some(KUBE_SYSTEM)),
        data: Some(BTreeMap::from([(
            CLUSTER_CONFIGURATION_KEY.to_string(),
            yaml,
        )])),
        ..ConfigMap::default()
    })
}

/// The Role that lets joining nodes read `kubeadm-config` and nothing else.
pub fn nodes_kubeadm_config_role() -> Role {
    Role {
        metadata: meta(NODES_KUBEADM_CONFIG, Some(KUBE_SYSTEM)),
        rules: Some(vec![PolicyRule {
            verbs: vec!["get".into()],
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            resource_names: Some(vec![KUBEADM_CONFIG.into()]),
            non_resource_urls: None,
        }]),
    }
}

/// Binds [`nodes_kubeadm_config_role`] to bootstrap tokens and to all nodes.
pub fn nodes_kubeadm_config_binding() -> RoleBinding {
    RoleBinding {
        metadata: meta(NODES_KUBEADM_CONFIG, Some(KUBE_SYSTEM)),
        role_ref: RoleRef {
            api_group: Some(RBAC_GROUP.into()),
            kind: "Role".into(),
            name: NODES_KUBEADM_CONFIG.into(),
        },
        subjects: Some(vec![group(BOOTSTRAP_TOKEN_GROUP), group(NODES_GROUP)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_admins_binding_is_kubeadms() {
        let value = serde_json::to_value(cluster_admins_binding()).unwrap();
        assert_eq!(
            value,
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": "kubeadm:cluster-admins"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group",
                    "name": "kubeadm:cluster-admins"}],
            })
        );
    }

    #[test]
    fn kubeadm_config_holds_the_cluster_configuration_that_parses_back() {
        let cluster = ClusterConfiguration {
            cluster_name: "lab".into(),
            ..ClusterConfiguration::default()
        };
        let cm = kubeadm_config(&cluster).unwrap();
        assert_eq!(cm.metadata.name.as_deref(), Some("kubeadm-config"));
        assert_eq!(cm.metadata.namespace.as_deref(), Some("kube-system"));
        let data = cm.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), ["ClusterConfiguration"]);
        let back: ClusterConfiguration =
            serde_yaml::from_str(&data["ClusterConfiguration"]).unwrap();
        assert_eq!(back.cluster_name, "lab");
        assert!(data["ClusterConfiguration"].contains("kind: ClusterConfiguration"));
    }

    #[test]
    fn nodes_may_only_get_kubeadm_config() {
        let role = serde_json::to_value(nodes_kubeadm_config_role()).unwrap();
        assert_eq!(
            role["rules"],
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"],
                "resourceNames": ["kubeadm-config"]}])
        );
        let binding = serde_json::to_value(nodes_kubeadm_config_binding()).unwrap();
        assert_eq!(binding["metadata"]["namespace"], "kube-system");
        assert_eq!(
            binding["roleRef"],
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                "name": "kubeadm:nodes-kubeadm-config"})
        );
        let groups: Vec<&str> = binding["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(groups, [BOOTSTRAP_TOKEN_GROUP, NODES_GROUP]);
    }
}
