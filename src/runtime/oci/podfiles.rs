//! The files the kubelet and containerd inject into a pod's containers (reference §7, §8), as
//! pure renderers: `/etc/hosts` (`makeHostsMount`), `/etc/hostname`, and `/etc/resolv.conf` per
//! `dnsPolicy` (`pkg/kubelet/network/dns`). Writing them is the sandbox's job.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::PodSpec;

/// The kubelet's limits (`validation.MaxDNSNameservers`, `MaxDNSSearchPaths`).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// Cluster DNS as the kubelet is configured with it (`clusterDNS`, `clusterDomain`).
#[derive(Debug, Clone, Default)]
pub struct ClusterDns {
    pub servers: Vec<IpAddr>,
    pub domain: String,
}

/// The pod's hostname: `spec.hostname`, else the pod name, cut to 63 characters without a
/// trailing `-` or `.` (the kubelet's `GeneratePodHostNameAndDomain` and `truncatePodHostnameIfNeeded`).
pub fn hostname(pod: &PodSpec, pod_name: &str) -> String {
    let name = pod
        .hostname
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(pod_name);
    let mut cut: String = name.chars().take(63).collect();
    while cut.ends_with('-') || cut.ends_with('.') {
        cut.pop();
    }
    cut
}

/// `/etc/hosts`: under `hostNetwork` the node's file behind a header; otherwise localhost, the
/// IPv6 names and the pod's own address; then `hostAliases`.
pub fn hosts(pod: &PodSpec, hostname: &str, pod_ip: Option<IpAddr>, node_hosts: &str) -> String {
    let mut out = String::new();
    if pod.host_network.unwrap_or(false) {
        out.push_str("# Kubernetes-managed hosts file (host network).\n");
        out.push_str(node_hosts);
        if !node_hosts.is_empty() && !node_hosts.ends_with('\n') {
            out.push('\n');
        }
    } else {
        out.push_str("# Kubernetes-managed hosts file.\n");
        out.push_str("127.0.0.1\tlocalhost\n");
        out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
        out.push_str("fe00::0\tip6-localnet\n");
        out.push_str("fe00::0\tip6-mcastprefix\n");
        out.push_str("fe00::1\tip6-allnodes\n");
        out.push_str("fe00::2\tip6-allrouters\n");
        if let Some(ip) = pod_ip {
            let fqdn = match pod.subdomain.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => format!("{hostname}.{sub}\t{hostname}"),
                None => hostname.to_string(),
            };
            out.push_str(&format!("{ip}\t{fqdn}\n"));
        }
    }
    let aliases = pod.host_aliases.iter().flatten().collect::<Vec<_>>();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for alias in aliases {
            let names = alias
                .hostnames
                .iter()
                .flatten()
                .cloned()
                .collect::<Vec<_>>();
            out.push_str(&format!("{}\t{}\n", alias.ip, names.join("\t")));
        }
    }
    out
}

/// The parts of a resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses `nameserver`, `search`/`domain` and `options` lines (the last search line wins).
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => conf.nameservers.extend(words.next().map(String::from)),
                Some("search") | Some("domain") => {
                    conf.searches = words.map(String::from).collect()
                }
                Some("options") => conf.options.extend(words.map(String::from)),
                _ => {}
            }
        }
        conf
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for server in &self.nameservers {
            out.push_str(&format!("nameserver {server}\n"));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// The pod's resolv.conf and, when cluster DNS was asked for but none is configured, the
/// kubelet's `MissingClusterDNS` warning.
pub fn resolv_conf(
    pod: &PodSpec,
    namespace: &str,
    cluster: &ClusterDns,
    host_resolv_conf: &str,
) -> (String, Option<String>) {
    let host_network = pod.host_network.unwrap_or(false);
    let policy = pod.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host = || {
        let mut conf = ResolvConf::parse(host_resolv_conf);
        if conf.nameservers.is_empty() && host_resolv_conf.trim().is_empty() {
            // An empty resolvConf: the kubelet's loopback default.
            conf.nameservers.push("127.0.0.1".into());
            conf.searches = vec![".".into()];
        }
        conf
    };
    let mut warning = None;
    let mut conf = match policy {
        "None" => ResolvConf::default(),
        "Default" => host(),
        "ClusterFirst" if host_network => host(),
        "ClusterFirst" | "ClusterFirstWithHostNet" if cluster.servers.is_empty() => {
            warning = Some(
                "MissingClusterDNS: no cluster DNS is configured; the pod uses the node's DNS"
                    .to_string(),
            );
            host()
        }
        _ => {
            let domain = cluster.domain.trim_end_matches('.');
            let mut searches = vec![
                format!("{namespace}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            searches.extend(host().searches.into_iter().filter(|s| s != "."));
            ResolvConf {
                nameservers: cluster.servers.iter().map(|s| s.to_string()).collect(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
    };
    if let Some(extra) = &pod.dns_config {
        conf.nameservers
            .extend(extra.nameservers.iter().flatten().cloned());
        conf.searches
            .extend(extra.searches.iter().flatten().cloned());
        for option in extra.options.iter().flatten() {
            let rendered = match &option.value {
                Some(v) => format!("{}:{v}", option.name.clone().unwrap_or_default()),
                None => option.name.clone().unwrap_or_default(),
            };
            let key = rendered.split(':').next().unwrap_or_default().to_string();
            conf.options
                .retain(|o| o.split(':').next() != Some(key.as_str()));
            conf.options.push(rendered);
        }
    }
    let mut seen = Vec::new();
    conf.searches.retain(|s| {
        let new = !seen.contains(s);
        seen.push(s.clone());
        new
    });
    conf.nameservers.truncate(MAX_NAMESERVERS);
    conf.searches.truncate(MAX_SEARCHES);
    (conf.render(), warning)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(value: serde_json::Value) -> PodSpec {
        let mut value = value;
        value["containers"] = json!([]);
        serde_json::from_value(value).unwrap()
    }

    const HOST: &str = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

    #[test]
    fn hostname_is_cut_to_63_without_trailing_separator() {
        let long = format!("{}-{}", "a".repeat(62), "b");
        assert_eq!(hostname(&pod(json!({})), &long), "a".repeat(62));
        assert_eq!(hostname(&pod(json!({"hostname": "own"})), "x"), "own");
    }

    #[test]
    fn hosts_for_pod_network_and_host_network() {
        let p = pod(json!({"hostAliases": [{"ip": "10.0.0.9", "hostnames": ["a", "b"]}]}));
        let text = hosts(&p, "web-n1", Some("10.88.0.5".parse().unwrap()), "ignored");
        assert!(text.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(text.contains("10.88.0.5\tweb-n1\n"));
        assert!(text.ends_with("# Entries added by HostAliases.\n10.0.0.9\ta\tb\n"));
        let text = hosts(
            &pod(json!({"hostNetwork": true})),
            "n1",
            None,
            "127.0.0.1 node",
        );
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 node\n"
        );
    }

    #[test]
    fn dns_policies() {
        let cluster = ClusterDns {
            servers: vec!["10.96.0.10".parse().unwrap()],
            domain: "cluster.local".into(),
        };
        let (text, warning) = resolv_conf(&pod(json!({})), "kube-system", &cluster, HOST);
        assert_eq!(
            text,
            "search kube-system.svc.cluster.local svc.cluster.local cluster.local corp.example\nnameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert!(warning.is_none());
        let (text, _) = resolv_conf(&pod(json!({"hostNetwork": true})), "ns", &cluster, HOST);
        assert_eq!(
            text,
            "search corp.example\nnameserver 192.0.2.53\noptions edns0\n"
        );
        let (text, warning) = resolv_conf(&pod(json!({})), "ns", &ClusterDns::default(), HOST);
        assert_eq!(
            text,
            "search corp.example\nnameserver 192.0.2.53\noptions edns0\n"
        );
        assert!(warning.unwrap().starts_with("MissingClusterDNS"));
        let none = pod(json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]}}));
        let (text, _) = resolv_conf(&none, "ns", &cluster, HOST);
        assert_eq!(text, "nameserver 1.1.1.1\noptions ndots:2\n");
        let (text, _) = resolv_conf(&pod(json!({"dnsPolicy": "Default"})), "ns", &cluster, "");
        assert_eq!(text, "search .\nnameserver 127.0.0.1\n");
    }
}
