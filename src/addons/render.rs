//! Rendering the addons' objects from `templates/addons/` (pure): the configuration in, a list of
//! API objects out, each checked to be a YAML mapping with its apiVersion, kind and name before
//! any is applied. The rendered text is what the golden tests compare.

use std::net::IpAddr;

use serde_json::Value;

use super::AddonError;
use crate::config::Config;
use crate::render::Templates;

/// kubeadm's `LabelNodeRoleControlPlane`: CoreDNS tolerates the control-plane taint.
pub const CONTROL_PLANE_TAINT: &str = "node-role.kubernetes.io/control-plane";
/// kubeadm's `coreDNSReplicas`.
pub const COREDNS_REPLICAS: i32 = 2;
/// Where kube-proxy reads its kubeconfig inside its pod (the ConfigMap's `kubeconfig.conf`).
const KUBE_PROXY_KUBECONFIG: &str = "/var/lib/kube-proxy/kubeconfig.conf";

/// One rendered API object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    /// `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    pub body: Value,
}

impl Object {
    /// `Deployment kube-system/coredns`, `ClusterRole system:coredns`.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// A rendered addon: its template's text and the objects in it.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub text: String,
    pub objects: Vec<Object>,
}

/// kubeadm's `GetDNSIP`: the 10th address of the first service CIDR (`10.96.0.10`, `fd00::a`).
pub fn dns_ip(cfg: &Config) -> IpAddr {
    let net = cfg.cluster.networking.service_subnet.first().network();
    match net {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4).wrapping_add(10)).into()),
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6).wrapping_add(10)).into()),
    }
}

/// CoreDNS with `replicas` (kubeadm keeps the replicas of a Deployment that already exists).
pub fn coredns(cfg: &Config, templates: &Templates, replicas: i32) -> Result<Rendered, AddonError> {
    let mut context = tera::Context::new();
    context.insert("image", &super::images::coredns_image(cfg));
    context.insert("replicas", &replicas);
    context.insert("dns_domain", &cfg.cluster.networking.dns_domain);
    context.insert("dns_ip", &dns_ip(cfg).to_string());
    context.insert("control_plane_taint", CONTROL_PLANE_TAINT);
    render(templates, super::COREDNS_TEMPLATE, &context)
}

/// kube-proxy: its kubeconfig names the control-plane endpoint (or this node's API server), its
/// configuration the pod CIDR.
pub fn kube_proxy(cfg: &Config, templates: &Templates) -> Result<Rendered, AddonError> {
    let mut context = tera::Context::new();
    context.insert("image", &super::images::kube_proxy_image(cfg));
    context.insert("server", &cfg.control_plane_url());
    let config = proxy_configuration(cfg);
    context.insert("proxy_config", &config.lines().collect::<Vec<_>>());
    context.insert("proxy_env", &cfg.host.proxy_env);
    render(templates, super::KUBE_PROXY_TEMPLATE, &context)
}

/// The `KubeProxyConfiguration` kubeadm writes into the ConfigMap (`componentconfigs/kubeproxy.go`
/// `Default`): bind to every address of the advertise address's family, the kubeconfig from the
/// ConfigMap, the pod CIDR as `clusterCIDR`. kubeadm serialises every other field at its zero
/// value, which kube-proxy then defaults; boot leaves them out, with the same effect.
pub fn proxy_configuration(cfg: &Config) -> String {
    let bind = match cfg.advertise_address {
        IpAddr::V6(_) => "'::'",
        IpAddr::V4(_) => "0.0.0.0",
    };
    let mut text = format!(
        "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nbindAddress: {bind}\nclientConnection:\n  kubeconfig: {KUBE_PROXY_KUBECONFIG}\n"
    );
    if let Some(pods) = &cfg.cluster.networking.pod_subnet {
        text.push_str(&format!("clusterCIDR: {pods}\n"));
    }
    text.push_str("kind: KubeProxyConfiguration\n");
    text
}

fn render(
    templates: &Templates,
    name: &str,
    context: &tera::Context,
) -> Result<Rendered, AddonError> {
    let text = templates.render(name, context)?;
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| AddonError::Invalid {
            template: name.to_string(),
            detail: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        objects.push(object(name, value)?);
    }
    Ok(Rendered { text, objects })
}

use serde::Deserialize;

fn object(template: &str, value: serde_yaml::Value) -> Result<Object, AddonError> {
    let invalid = |detail: String| AddonError::Invalid {
        template: template.to_string(),
        detail,
    };
    let body: Value = serde_json::to_value(&value).map_err(|e| invalid(e.to_string()))?;
    let text = |path: &[&str]| {
        path.iter()
            .try_fold(&body, |v, key| v.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let (Some(api_version), Some(kind), Some(name)) = (
        text(&["apiVersion"]),
        text(&["kind"]),
        text(&["metadata", "name"]),
    ) else {
        return Err(invalid(
            "a document lacks apiVersion, kind or metadata.name".into(),
        ));
    };
    Ok(Object {
        namespace: text(&["metadata", "namespace"]),
        api_version,
        kind,
        name,
        body,
    })
}
