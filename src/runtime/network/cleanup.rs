//! What `boot reset` does about the pod network, and how it proves nothing is left: DEL for every
//! cached attachment (with the configuration and result ADD cached), removal of the iptables
//! masquerade chain bridge leaks when a namespace was already gone (reference §13), removal of
//! boot's default bridge once no pod is on it; then a scan for any veth on it, the bridge and its
//! address, IPAM allocation or iptables chain of those attachments. The CNI conf dir is not
//! touched (as with kubeadm).
//!
//! Touches: the result cache, `/sys/class/net`, the IPAM directories, the iptables nat table
//! (through [`super::iptables`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cache::CachedAttachment;
use super::iptables::{chain_name, nat_rules, remove_chain};
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
        assert!(masquerade_chains(&attachment).is_empty(), "no ipMasq");
    }
}
