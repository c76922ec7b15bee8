//! What each plugin is given and what boot reads back (pure): the per-plugin request config of
//! spec §3 ("Deriving request configuration"), `CNI_ARGS` as containerd sets them for the kubelet,
//! the `portMappings` capability from the pod's `hostPort`s, and the pod IPs of a result.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::PodSpec;
use serde_json::{json, Map, Value};

use super::conflist::NetworkConfigList;

/// The pod's interface, as containerd names it.
pub const POD_IFNAME: &str = "eth0";

/// The identity of a pod as the plugins see it in `CNI_ARGS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodArgs {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The sandbox ID (`CNI_CONTAINERID` and `K8S_POD_INFRA_CONTAINER_ID`).
    pub sandbox_id: String,
}

impl PodArgs {
    /// `IgnoreUnknown=1;K8S_POD_NAMESPACE=…;K8S_POD_NAME=…;K8S_POD_INFRA_CONTAINER_ID=…;K8S_POD_UID=…`
    /// (containerd's order). A value holding `;`, `=` or a control character would change the
    /// meaning of the list, so it is refused.
    pub fn cni_args(&self) -> Result<String, String> {
        let pairs = [
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", self.namespace.as_str()),
            ("K8S_POD_NAME", self.name.as_str()),
            ("K8S_POD_INFRA_CONTAINER_ID", self.sandbox_id.as_str()),
            ("K8S_POD_UID", self.uid.as_str()),
        ];
        for (key, value) in pairs {
            if value.is_empty()
                || value
                    .chars()
                    .any(|c| c == ';' || c == '=' || c.is_control())
            {
                return Err(format!("{key} {value:?} cannot be passed in CNI_ARGS"));
            }
        }
        Ok(pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";"))
    }
}

/// The capability arguments the runtime has (containerd's `portMappings`), as a JSON object.
pub fn capability_args(spec: &PodSpec) -> Map<String, Value> {
    let mappings: Vec<Value> = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| {
            let mut mapping = json!({
                "hostPort": p.host_port,
                "containerPort": p.container_port,
                "protocol": p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
            });
            if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                mapping["hostIP"] = json!(ip);
            }
            mapping
        })
        .collect();
    let mut args = Map::new();
    if !mappings.is_empty() {
        args.insert("portMappings".into(), Value::Array(mappings));
    }
    args
}

/// The config one plugin reads on stdin: its own object with the list's `name` and `cniVersion`,
/// `runtimeConfig` holding the capabilities it declares and the runtime has, `prevResult` when
/// there is one; `capabilities` removed.
pub fn plugin_request(
    list: &NetworkConfigList,
    plugin: &Map<String, Value>,
    capability_args: &Map<String, Value>,
    prev_result: Option<&Value>,
) -> Value {
    let mut request = plugin.clone();
    let declared = request.remove("capabilities");
    let runtime_config: Map<String, Value> = capability_args
        .iter()
        .filter(|(key, _)| {
            declared
                .as_ref()
                .and_then(|c| c.get(key.as_str()))
                .and_then(Value::as_bool)
                == Some(true)
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !runtime_config.is_empty() {
        request.insert("runtimeConfig".into(), Value::Object(runtime_config));
    }
    request.insert("name".into(), json!(list.name));
    request.insert("cniVersion".into(), json!(list.cni_version));
    match prev_result {
        Some(prev) => request.insert("prevResult".into(), prev.clone()),
        None => request.remove("prevResult"),
    };
    Value::Object(request)
}

/// The pod's addresses from an ADD result: those on the interface inside the sandbox named
/// `ifname` (the first IP is the pod IP, as containerd takes it); when the result names no
/// interfaces (an IPAM-only chain), every IP.
pub fn pod_ips(result: &Value, ifname: &str) -> Vec<IpNet> {
    let interfaces = result
        .get("interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let pod_interface = interfaces.iter().position(|i| {
        i.get("name").and_then(Value::as_str) == Some(ifname)
            && i.get("sandbox")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
    });
    result
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(
            |ip| match (pod_interface, ip.get("interface").and_then(Value::as_u64)) {
                (Some(index), Some(i)) => i as usize == index,
                (Some(_), None) => false,
                (None, _) => true,
            },
        )
        .filter_map(|ip| ip.get("address")?.as_str()?.parse::<IpNet>().ok())
        .collect()
}

/// The pod IP: the first address, IPv4 preferred as the kubelet's `status.podIP` is.
pub fn pod_ip(ips: &[IpNet]) -> Option<IpAddr> {
    ips.iter()
        .find(|ip| ip.addr().is_ipv4())
        .or_else(|| ips.first())
        .map(IpNet::addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> NetworkConfigList {
        NetworkConfigList::from_json(&json!({"cniVersion": "1.0.0", "name": "net", "plugins": [
            {"type": "bridge", "runtimeConfig": {"stale": 1}},
            {"type": "portmap", "capabilities": {"portMappings": true, "bandwidth": false}},
        ]}))
        .unwrap()
    }

    #[test]
    fn requests_inject_name_version_runtime_config_and_prev_result() {
        let list = list();
        let spec: PodSpec = serde_json::from_value(json!({"containers": [
            {"name": "web", "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.1"},
                                      {"containerPort": 53, "hostPort": 5353, "protocol": "UDP"},
                                      {"containerPort": 9000}]}]}))
        .unwrap();
        let caps = capability_args(&spec);
        assert_eq!(
            caps["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"},
                   {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}])
        );
        let first = plugin_request(&list, &list.plugins[0], &caps, None);
        assert_eq!(first["name"], "net");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first.get("prevResult").is_none());
        assert_eq!(
            first["runtimeConfig"],
            json!({"stale": 1}),
            "undeclared capabilities are not added"
        );
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let second = plugin_request(&list, &list.plugins[1], &caps, Some(&prev));
        assert_eq!(second["prevResult"], prev);
        assert_eq!(
            second["runtimeConfig"]["portMappings"],
            caps["portMappings"]
        );
        assert!(second.get("capabilities").is_none());
    }

    #[test]
    fn cni_args_are_containerds_and_refuse_separators() {
        let mut args = PodArgs {
            namespace: "default".into(),
            name: "web-node1".into(),
            uid: "abc".into(),
            sandbox_id: "abc".into(),
        };
        assert_eq!(
            args.cni_args().unwrap(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-node1;K8S_POD_INFRA_CONTAINER_ID=abc;K8S_POD_UID=abc"
        );
        args.name = "a;b=c".into();
        assert!(args.cni_args().unwrap_err().contains("K8S_POD_NAME"));
    }

    #[test]
    fn the_pod_ip_is_the_first_address_on_the_sandbox_interface() {
        let result = json!({"cniVersion": "1.0.0",
            "interfaces": [{"name": "boot0", "mac": "aa"}, {"name": "veth1", "mac": "bb"},
                           {"name": "eth0", "mac": "cc", "sandbox": "/run/netns/x"}],
            "ips": [{"address": "10.1.0.1/16", "interface": 0},
                    {"address": "10.88.0.7/16", "gateway": "10.88.0.1", "interface": 2},
                    {"address": "fd00::7/64", "interface": 2}]});
        let ips = pod_ips(&result, "eth0");
        assert_eq!(ips.len(), 2);
        assert_eq!(pod_ip(&ips), Some("10.88.0.7".parse().unwrap()));
        let ipam_only = json!({"ips": [{"address": "fd00::9/64"}]});
        assert_eq!(
            pod_ip(&pod_ips(&ipam_only, "eth0")),
            Some("fd00::9".parse().unwrap())
        );
        assert_eq!(pod_ip(&pod_ips(&json!({}), "eth0")), None);
    }
}
