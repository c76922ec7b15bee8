//! What `boot reset` does about the pod network, and how it proves nothing is left: DEL for every
//! cached attachment (with the configuration and result ADD cached), removal of the iptables
//! masquerade chain bridge leaks when a namespace was already gone (reference §13), removal of
//! boot's default bridge once no pod is on it; then a scan for any veth on it, the bridge and its
//! address, IPAM allocation or iptables chain of those attachments. The CNI conf dir is not
//! touched (as with kubeadm).
//!
//! Touches: the result cache, `/sys/class/net`, the IPAM directories, the iptables nat table.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha512};

use super::cache::CachedAttachment;
use super::{delete_cached, NetworkSettings};

/// The attachments the cache holds now (reset takes them before tearing down, to check after).
pub fn attachments(settings: &NetworkSettings) -> Vec<CachedAttachment> {
    settings.cache().load_all().0
}

/// DEL for every cached attachment, leaked chains removed, the default bridge deleted when empty.
/// Returns what was done and what failed, as lines.
pub fn teardown(settings: &NetworkSettings) -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let (entries, bad) = settings.cache().load_all();
    for (path, problem) in bad {
        failed.push(format!(
            "unusable CNI cache file {}: {problem}",
            path.display()
        ));
    }
    for entry in &entries {
        let what = format!(
            "pod network attachment {}/{}",
            entry.network_name, entry.container_id
        );
        match delete_cached(settings, entry) {
            Ok(()) => done.push(format!("[reset] Deleted the {what}")),
            Err(e) => failed.push(format!("DEL of the {what}: {e}")),
        }
        for chain in masquerade_chains(entry) {
            if let Err(e) = remove_chain(&chain) {
                failed.push(format!("iptables chain {chain}: {e}"));
            }
        }
    }
    let bridge = &settings.default_network.bridge;
    if link_exists(bridge) && bridge_ports(bridge).is_empty() {
        match delete_bridge(bridge) {
            Ok(()) => done.push(format!("[reset] Deleted the bridge {bridge}")),
            Err(e) => failed.push(format!("delete the bridge {bridge}: {e}")),
        }
    }
    (done, failed)
}

/// Everything of boot's pod network still there, one line each.
pub fn leftovers(settings: &NetworkSettings, before: &[CachedAttachment]) -> Vec<String> {
    let mut left = Vec::new();
    // The bridge is the host's, not the root's: with pods of another agent on it, it is theirs.
    let bridge = &settings.default_network.bridge;
    if link_exists(bridge) && bridge_ports(bridge).is_empty() {
        left.push(format!("the bridge {bridge} (and its gateway address)"));
    }
    for file in allocation_files(&settings.default_network.allocations_dir(), None) {
        left.push(format!("IPAM allocation {}", file.display()));
    }
    let (entries, bad) = settings.cache().load_all();
    for entry in &entries {
        left.push(format!(
            "CNI cache entry {}",
            settings
                .cache()
                .path(&entry.network_name, &entry.container_id, &entry.if_name)
                .display()
        ));
    }
    for (path, _) in bad {
        left.push(format!("CNI cache file {}", path.display()));
    }
    let rules = nat_rules().unwrap_or_default();
    for attachment in before {
        for veth in host_interfaces(attachment) {
            if link_exists(&veth) {
                left.push(format!(
                    "veth {veth} of {}/{}",
                    attachment.network_name, attachment.container_id
                ));
            }
        }
        if let Some(dir) = host_local_dir(attachment) {
            for file in allocation_files(&dir, Some(&attachment.container_id)) {
                left.push(format!("IPAM allocation {}", file.display()));
            }
        }
        for chain in masquerade_chains(attachment)
            .into_iter()
            .chain([chain_name(attachment, "DN-")])
        {
            if rules.lines().any(|l| l == format!("-N {chain}")) {
                left.push(format!(
                    "iptables nat chain {chain} of {}/{}",
                    attachment.network_name, attachment.container_id
                ));
            }
        }
    }
    left
}

/// portmap's shared chains (reference §13), which no plugin ever removes.
const HOSTPORT_CHAINS: &[&str] = &[
    "CNI-HOSTPORT-DNAT",
    "CNI-HOSTPORT-SETMARK",
    "CNI-HOSTPORT-MASQ",
];

/// portmap's shared chains when no container's `CNI-DN-*` chain is left to use them.
pub fn unused_hostport_chains() -> Vec<String> {
    let Some(rules) = nat_rules() else {
        return Vec::new();
    };
    if rules.lines().any(|l| l.starts_with("-N CNI-DN-")) {
        return Vec::new();
    }
    HOSTPORT_CHAINS
        .iter()
        .filter(|c| rules.lines().any(|l| l == format!("-N {c}")))
        .map(|c| c.to_string())
        .collect()
}

/// Removes portmap's shared chains (and the jumps to them) once nothing uses them: after reset,
/// boot's hostPorts leave no rule behind. Another CNI user's next ADD recreates them. Returns
/// what was done and what failed, as lines.
pub fn remove_unused_hostport_chains() -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for chain in unused_hostport_chains() {
        match remove_chain(&chain) {
            Ok(()) => done.push(format!(
                "[reset] Removed portmap's unused iptables chain {chain}"
            )),
            Err(e) => failed.push(format!("iptables chain {chain}: {e}")),
        }
    }
    (done, failed)
}

/// The iptables chain names the plugins derive from a network and container (`pkg/utils`
/// `MustFormatChainNameWithPrefix`): `CNI-` + prefix + sha512(name + id) in hex, cut to 28.
pub fn chain_name(attachment: &CachedAttachment, prefix: &str) -> String {
    let digest = Sha512::digest(format!(
        "{}{}",
        attachment.network_name, attachment.container_id
    ));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut chain = format!("CNI-{prefix}{hex}");
    chain.truncate(28);
    chain
}

/// bridge's `ipMasq` chain, when the attachment's configuration asks for masquerading.
fn masquerade_chains(attachment: &CachedAttachment) -> Vec<String> {
    let masquerades = attachment
        .config_list()
        .map(|l| {
            l.plugins
                .iter()
                .any(|p| p.get("ipMasq").and_then(|v| v.as_bool()) == Some(true))
        })
        .unwrap_or(false);
    if masquerades {
        vec![chain_name(attachment, "")]
    } else {
        Vec::new()
    }
}

/// The host side of an attachment's veth pair: the result's interfaces outside the sandbox,
/// other than the bridges the configuration names.
fn host_interfaces(attachment: &CachedAttachment) -> Vec<String> {
    let bridges: Vec<String> = attachment
        .config_list()
        .map(|l| {
            l.plugins
                .iter()
                .filter_map(|p| p.get("bridge").and_then(|b| b.as_str()).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let interfaces = attachment
        .result
        .get("interfaces")
        .and_then(|i| i.as_array());
    interfaces
        .into_iter()
        .flatten()
        .filter(|i| {
            i.get("sandbox")
                .and_then(|s| s.as_str())
                .is_none_or(str::is_empty)
        })
        .filter_map(|i| i.get("name").and_then(|n| n.as_str()))
        .filter(|name| !bridges.iter().any(|b| b == name) && is_interface_name(name))
        .map(str::to_string)
        .collect()
}

/// An interface name from a result is only used as a `/sys/class/net` entry name.
fn is_interface_name(name: &str) -> bool {
    !name.is_empty() && name.len() < 16 && !name.contains('/') && name != "." && name != ".."
}

/// host-local's directory for the attachment's network: its `dataDir`, else the plugin default.
fn host_local_dir(attachment: &CachedAttachment) -> Option<PathBuf> {
    let list = attachment.config_list().ok()?;
    let ipam = list
        .plugins
        .iter()
        .filter_map(|p| p.get("ipam"))
        .find(|ipam| ipam.get("type").and_then(|t| t.as_str()) == Some("host-local"))?;
    let data_dir = ipam
        .get("dataDir")
        .and_then(|d| d.as_str())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/cni/networks"));
    Some(data_dir.join(&list.name))
}

/// host-local's allocation files in `dir` (one per IP, holding `<containerID>\r\n<ifname>`),
/// those of `container_id` only when given.
fn allocation_files(dir: &Path, container_id: Option<&str>) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
        })
        .filter(|p| match container_id {
            None => true,
            Some(id) => std::fs::read_to_string(p)
                .is_ok_and(|owner| owner.lines().next().map(str::trim) == Some(id)),
        })
        .collect()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The interfaces enslaved to a bridge (`/sys/class/net/<bridge>/brif/`).
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    let mut ports: Vec<String> =
        std::fs::read_dir(Path::new("/sys/class/net").join(bridge).join("brif"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
    ports.sort();
    ports
}

/// The nat table as `iptables -S` prints it; `None` without iptables.
fn nat_rules() -> Option<String> {
    let out = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn iptables(args: &[&str]) -> Result<(), String> {
    let out = Command::new("iptables")
        .args(["-w", "-t", "nat"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Removes a nat chain and the rules that jump to it; nothing when it is not there.
fn remove_chain(chain: &str) -> Result<(), String> {
    let Some(rules) = nat_rules() else {
        return Ok(());
    };
    if !rules.lines().any(|l| l == format!("-N {chain}")) {
        return Ok(());
    }
    let jumps_to_chain = |rule: &&str| rule.split_whitespace().rev().take(2).eq([chain, "-j"]);
    for rule in rules.lines().filter(jumps_to_chain) {
        let Some(rest) = rule.strip_prefix("-A ") else {
            continue;
        };
        let mut args = vec!["-D".to_string()];
        args.extend(split_rule(rest));
        iptables(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    iptables(&["-F", chain])?;
    iptables(&["-X", chain])
}

/// Splits an `iptables -S` rule into arguments, honouring the double quotes of comments.
fn split_rule(rule: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

/// `ip link delete <bridge>` (iproute2; the bridge ioctl `SIOCBRDELBR` is not available on
/// every kernel, and boot speaks no netlink of its own).
fn delete_bridge(name: &str) -> Result<(), String> {
    let out = Command::new("ip")
        .args(["link", "delete", "dev", name, "type", "bridge"])
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chain_names_match_the_plugins() {
        let attachment = CachedAttachment {
            kind: super::super::cache::CACHE_KIND.into(),
            container_id: "abc".into(),
            network_name: "boot".into(),
            if_name: "eth0".into(),
            netns: "/x".into(),
            cni_args: String::new(),
            capability_args: Default::default(),
            config: json!({"cniVersion": "1.0.0", "name": "boot",
                "plugins": [{"type": "bridge", "ipMasq": true}]}),
            result: json!({}),
        };
        // `printf bootabc | sha512sum | cut -c1-24`
        let chain = chain_name(&attachment, "");
        assert_eq!(chain, "CNI-31bbf5be91da0460e2cc096d");
        assert_eq!(
            chain_name(&attachment, "DN-"),
            "CNI-DN-31bbf5be91da0460e2cc0"
        );
        assert_eq!(masquerade_chains(&attachment), [chain]);
    }

    #[test]
    fn the_host_side_veth_is_found_in_the_result() {
        let attachment = CachedAttachment {
            kind: super::super::cache::CACHE_KIND.into(),
            container_id: "abc".into(),
            network_name: "boot".into(),
            if_name: "eth0".into(),
            netns: "/x".into(),
            cni_args: String::new(),
            capability_args: Default::default(),
            config: json!({"cniVersion": "1.0.0", "name": "boot",
                "plugins": [{"type": "bridge", "bridge": "boot0"}]}),
            result: json!({"interfaces": [{"name": "boot0"}, {"name": "veth1234", "sandbox": ""},
                                          {"name": "eth0", "sandbox": "/x"},
                                          {"name": "../../etc"}]}),
        };
        assert_eq!(host_interfaces(&attachment), ["veth1234"]);
    }

    #[test]
    fn rules_split_with_quoted_comments() {
        let rule = r#"POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"boot\" id: \"abc\"" -j CNI-x"#;
        let args = split_rule(rule);
        assert_eq!(args.len(), 9, "{args:?}");
        assert_eq!(args[6], r#"name: "boot" id: "abc""#);
        assert_eq!(
            split_rule("POSTROUTING -s 10.88.0.2/32 -j CNI-x"),
            ["POSTROUTING", "-s", "10.88.0.2/32", "-j", "CNI-x"]
        );
    }
}
