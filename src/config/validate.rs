//! Checks that span fields (one field's value is checked while it is parsed, see `types`). Errors
//! point at the line of the field they are about, found by walking the document's indentation.

use ipnet::IpNet;

use super::boot::BootConfiguration;
use super::error::ConfigError;
use super::kubeadm::{ClusterConfiguration, InitConfiguration};
use super::load::DocumentSource;
use super::types::is_dns_name;

/// An error about `kind.path`, with the line of that field when the file has it.
pub fn error_at(
    sources: &[DocumentSource],
    kind: &str,
    path: &[&str],
    message: impl Into<String>,
) -> ConfigError {
    let source = sources.iter().find(|s| s.kind == kind);
    ConfigError {
        file: source.map_or("flags", |s| s.file.as_str()).to_string(),
        line: source.and_then(|s| locate(&s.text, path).map(|l| l + s.first_line - 1)),
        path: std::iter::once(kind)
            .chain(path.iter().copied())
            .collect::<Vec<_>>()
            .join("."),
        message: message.into(),
        hint: None,
    }
}

/// The 1-based line of the block-style key `path` in `text`, if present.
pub fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let mut depth = 0;
    let mut parent_indent: isize = -1;
    for (index, line) in text.lines().enumerate() {
        let indent = (line.len() - line.trim_start().len()) as isize;
        let Some((key, _)) = line.trim_start().trim_start_matches("- ").split_once(':') else {
            continue;
        };
        if indent <= parent_indent && depth > 0 {
            // Left the block we were searching in.
            return None;
        }
        if key.trim() == path[depth] && indent > parent_indent {
            depth += 1;
            parent_indent = indent;
            if depth == path.len() {
                return Some(index + 1);
            }
        }
    }
    None
}

/// Cross-field rules kubeadm's validation enforces.
pub fn documents(
    init: &InitConfiguration,
    cluster: &ClusterConfiguration,
    sources: &[DocumentSource],
) -> Result<(), ConfigError> {
    let at = |kind: &str, path: &[&str], msg: String| error_at(sources, kind, path, msg);
    if cluster.etcd.local.is_some() && cluster.etcd.external.is_some() {
        return Err(at(
            "ClusterConfiguration",
            &["etcd"],
            "local and external are mutually exclusive".into(),
        )
        .with_hint("keep etcd.local for a stacked etcd or etcd.external for your own cluster"));
    }
    if let Some(external) = &cluster.etcd.external {
        if external.endpoints.is_empty() {
            return Err(at(
                "ClusterConfiguration",
                &["etcd", "external", "endpoints"],
                "must list at least one endpoint".into(),
            ));
        }
        for endpoint in &external.endpoints {
            if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
                return Err(at(
                    "ClusterConfiguration",
                    &["etcd", "external", "endpoints"],
                    format!("{endpoint:?} is not an http(s) URL"),
                ));
            }
        }
        let files = [&external.ca_file, &external.cert_file, &external.key_file];
        if files.iter().any(|f| f.is_empty()) && files.iter().any(|f| !f.is_empty()) {
            return Err(at(
                "ClusterConfiguration",
                &["etcd", "external"],
                "caFile, certFile and keyFile go together".into(),
            ));
        }
    }
    if init.local_api_endpoint.bind_port == 0 {
        return Err(at(
            "InitConfiguration",
            &["localAPIEndpoint", "bindPort"],
            "must be between 1 and 65535".into(),
        ));
    }
    let services = &cluster.networking.service_subnet.0;
    for net in services {
        // kubeadm's ValidateServiceSubnetSize: at most 20 bits of service addresses.
        let host_bits = net.max_prefix_len() - net.prefix_len();
        if host_bits > 20 {
            return Err(at(
                "ClusterConfiguration",
                &["networking", "serviceSubnet"],
                format!(
                    "{net} is too large: at most 20 host bits (e.g. /12 for IPv4, /108 for IPv6)"
                ),
            ));
        }
    }
    if let Some(pods) = &cluster.networking.pod_subnet {
        if let Some((p, s)) = pods
            .0
            .iter()
            .flat_map(|p| services.iter().map(move |s| (p, s)))
            .find(|(p, s)| overlaps(p, s))
        {
            return Err(at(
                "ClusterConfiguration",
                &["networking", "podSubnet"],
                format!("{p} overlaps the service subnet {s}"),
            ));
        }
    }
    if !is_dns_name(&cluster.networking.dns_domain) {
        return Err(at(
            "ClusterConfiguration",
            &["networking", "dnsDomain"],
            format!("{:?} is not a DNS name", cluster.networking.dns_domain),
        ));
    }
    let components = [
        (
            "apiServer",
            &cluster.api_server.extra_args,
            &cluster.api_server.extra_volumes,
            &cluster.api_server.extra_envs,
        ),
        (
            "controllerManager",
            &cluster.controller_manager.extra_args,
            &cluster.controller_manager.extra_volumes,
            &cluster.controller_manager.extra_envs,
        ),
        (
            "scheduler",
            &cluster.scheduler.extra_args,
            &cluster.scheduler.extra_volumes,
            &cluster.scheduler.extra_envs,
        ),
    ];
    for (name, args, volumes, envs) in components {
        if let Some(arg) = args
            .iter()
            .find(|a| a.name.is_empty() || a.name.starts_with('-'))
        {
            return Err(at(
                "ClusterConfiguration",
                &[name, "extraArgs"],
                format!(
                    "{:?} is not a flag name (write it without dashes)",
                    arg.name
                ),
            ));
        }
        for volume in volumes.iter() {
            if !(volume.host_path.starts_with('/') && volume.mount_path.starts_with('/')) {
                return Err(at(
                    "ClusterConfiguration",
                    &[name, "extraVolumes"],
                    format!(
                        "volume {:?}: hostPath and mountPath must be absolute",
                        volume.name
                    ),
                ));
            }
        }
        if let Some(env) = envs.iter().find(|e| e.name.is_empty()) {
            return Err(at(
                "ClusterConfiguration",
                &[name, "extraEnvs"],
                format!("an entry has an empty name (value {:?})", env.value),
            ));
        }
    }
    Ok(())
}

/// boot's default pod network is node-local: its range must stay clear of the cluster's pod and
/// service subnets, or pod IPs and service IPs would be ambiguous on the node. Its directories are
/// absolute paths.
pub fn pod_network(
    boot: &BootConfiguration,
    cluster: &ClusterConfiguration,
    sources: &[DocumentSource],
) -> Result<(), ConfigError> {
    let network = &boot.network;
    let at = |path: &[&str], msg: String| error_at(sources, "BootConfiguration", path, msg);
    let range = IpNet::V4(network.default_subnet);
    // host-local refuses IPv4 subnets smaller than /30 (reference §13).
    if network.default_subnet.prefix_len() > 30 {
        return Err(at(
            &["network", "defaultSubnet"],
            format!("{range} is too small: host-local needs at least a /30"),
        ));
    }
    let cluster_ranges = cluster
        .networking
        .service_subnet
        .0
        .iter()
        .map(|s| ("serviceSubnet", s))
        .chain(
            cluster
                .networking
                .pod_subnet
                .iter()
                .flat_map(|p| p.0.iter().map(|s| ("podSubnet", s))),
        );
    for (field, subnet) in cluster_ranges {
        if overlaps(&range, subnet) {
            return Err(at(
                &["network", "defaultSubnet"],
                format!("{range} overlaps the cluster's {field} {subnet}"),
            )
            .with_hint("choose a node-local range outside the pod and service subnets"));
        }
    }
    let dirs = std::iter::once(&network.conf_dir).chain(network.bin_dirs.iter());
    if let Some(dir) = dirs.into_iter().find(|d| !d.is_absolute()) {
        return Err(at(
            &["network"],
            format!("{} is not an absolute path", dir.display()),
        ));
    }
    Ok(())
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// `BootConfiguration.agent`: what the agent would otherwise refuse (or panic on) at start.
pub fn boot(boot: &BootConfiguration, sources: &[DocumentSource]) -> Result<(), ConfigError> {
    let at = |path: &[&str], msg: String| error_at(sources, "BootConfiguration", path, msg);
    let address = boot.agent.status_address.as_str();
    if !matches!(address, "" | "none") && address.parse::<std::net::SocketAddr>().is_err() {
        return Err(at(
            &["agent", "statusAddress"],
            format!("{address:?} is not an IP:PORT address"),
        )
        .with_hint("give IP:PORT with a port up to 65535, e.g. 127.0.0.1:10248, or none"));
    }
    if boot.agent.relist_period.0.is_zero() {
        return Err(at(
            &["agent", "relistPeriod"],
            "must be longer than 0s".into(),
        ));
    }
    let snapshots = &boot.etcd_snapshots;
    if let Err(e) = snapshots
        .schedule
        .parse::<crate::etcd::snapshot::Schedule>()
    {
        return Err(at(&["etcdSnapshots", "schedule"], e.to_string())
            .with_hint("five fields in UTC, e.g. \"0 */12 * * *\", or @daily"));
    }
    if snapshots.enabled && snapshots.retention == 0 {
        return Err(at(
            &["etcdSnapshots", "retention"],
            "0 would remove every snapshot as soon as it is taken".into(),
        )
        .with_hint("keep at least 1, or set etcdSnapshots.enabled: false"));
    }
    if !snapshots.directory.is_absolute() {
        return Err(at(
            &["etcdSnapshots", "directory"],
            format!("{} is not an absolute path", snapshots.directory.display()),
        ));
    }
    Ok(())
}

/// The node name becomes a certificate CN and part of pod names: an RFC 1123 subdomain.
/// A renewal window as long as the validity would renew every certificate as soon as it is issued.
pub fn renewal_window(
    boot: &super::boot::BootConfiguration,
    cluster: &ClusterConfiguration,
    sources: &[DocumentSource],
) -> Result<(), ConfigError> {
    let validity = cluster.certificate_validity_period.0;
    match boot.certificates.renew_before {
        Some(before) if before.0 >= validity => Err(error_at(
            sources,
            "BootConfiguration",
            &["certificates", "renewBefore"],
            format!(
                "{:?} is not shorter than certificateValidityPeriod ({validity:?}): every \
                 certificate would be due as soon as it is issued",
                before.0
            ),
        )
        .with_hint("leave it unset (a third of the validity) or make it shorter")),
        _ => Ok(()),
    }
}

pub fn node_name(name: &str, sources: &[DocumentSource]) -> Result<(), ConfigError> {
    if is_dns_name(name) {
        return Ok(());
    }
    Err(error_at(
        sources,
        "InitConfiguration",
        &["nodeRegistration", "name"],
        format!("{name:?} is not a valid node name (lowercase RFC 1123 DNS name)"),
    )
    .with_hint("set nodeRegistration.name or --node-name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys() {
        let text = "apiVersion: x\nkind: ClusterConfiguration\netcd:\n  local:\n    dataDir: /x\n  external:\n    endpoints: []\nnetworking:\n  podSubnet: a\n";
        assert_eq!(locate(text, &["etcd"]), Some(3));
        assert_eq!(locate(text, &["etcd", "external", "endpoints"]), Some(7));
        assert_eq!(locate(text, &["networking", "podSubnet"]), Some(9));
        assert_eq!(locate(text, &["networking", "serviceSubnet"]), None);
    }

    #[test]
    fn the_default_pod_range_must_stay_clear_of_the_cluster_ranges() {
        let mut boot = BootConfiguration::default();
        let cluster = ClusterConfiguration::default();
        pod_network(&boot, &cluster, &[]).unwrap();
        boot.network.default_subnet = "10.100.0.0/16".parse().unwrap();
        let error = pod_network(&boot, &cluster, &[]).unwrap_err().to_string();
        assert!(
            error.contains("overlaps the cluster's serviceSubnet 10.96.0.0/12"),
            "{error}"
        );
        boot.network.default_subnet = "10.88.0.0/31".parse().unwrap();
        let error = pod_network(&boot, &cluster, &[]).unwrap_err().to_string();
        assert!(error.contains("too small"), "{error}");
        boot.network.default_subnet = "10.88.0.0/16".parse().unwrap();
        boot.network.bin_dirs = vec!["relative/bin".into()];
        let error = pod_network(&boot, &cluster, &[]).unwrap_err().to_string();
        assert!(
            error.contains("relative/bin is not an absolute path"),
            "{error}"
        );
    }
}
