//! boot's built-in network, used when the conf dir holds no configuration (boot never writes one
//! there: a CNI add-on installed later takes over, as with the kubelet). It is containerd's
//! `containerd-net` example (reference §13) on boot's own bridge: bridge + host-local IPAM on a
//! node-local range, the bridge as the pods' gateway with masquerading and hairpin, then portmap
//! for `hostPort` and loopback.

use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde_json::json;

use super::conflist::NetworkConfigList;

/// The network's name (the IPAM directory, the iptables chain hashes, the cache file names).
pub const DEFAULT_NETWORK_NAME: &str = "boot";
/// The bridge, named like containerd's `cni0` but boot's own.
pub const DEFAULT_BRIDGE: &str = "boot0";
/// containerd's default pod range: node-local, clear of kubeadm's service range (10.96.0.0/12)
/// and of the usual add-on pod ranges (10.244.0.0/16 flannel, 192.168.0.0/16 calico).
pub const DEFAULT_SUBNET: &str = "10.88.0.0/16";

/// What boot's default network is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultNetwork {
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// host-local's `dataDir` (`<root>/var/lib/boot/cni/networks`): IPAM state under boot's root.
    pub ipam_dir: PathBuf,
}

impl DefaultNetwork {
    pub fn conflist(&self) -> NetworkConfigList {
        let list = json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": true,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.subnet.to_string()}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": self.ipam_dir,
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "loopback"}
            ]
        });
        NetworkConfigList::from_json(&list).expect("the built-in conflist is valid")
    }

    /// The directory host-local keeps this network's allocations in.
    pub fn allocations_dir(&self) -> PathBuf {
        self.ipam_dir.join(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_chains_bridge_portmap_and_loopback_on_the_range() {
        let network = DefaultNetwork {
            name: "boot".into(),
            bridge: "boot0".into(),
            subnet: DEFAULT_SUBNET.parse().unwrap(),
            ipam_dir: "/r/var/lib/boot/cni/networks".into(),
        };
        let list = network.conflist();
        assert_eq!(list.plugin_types(), ["bridge", "portmap", "loopback"]);
        assert_eq!(list.cni_version, "1.0.0");
        let bridge = &list.plugins[0];
        assert_eq!(bridge["bridge"], "boot0");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], true);
        assert_eq!(bridge["hairpinMode"], true);
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/16");
        assert_eq!(bridge["ipam"]["dataDir"], "/r/var/lib/boot/cni/networks");
        assert_eq!(list.plugins[1]["capabilities"]["portMappings"], true);
        assert_eq!(
            network.allocations_dir(),
            PathBuf::from("/r/var/lib/boot/cni/networks/boot")
        );
    }
}
