//! Pod networking through CNI (design §8 "runtime/network"), for any runtime: once a sandbox's
//! network namespace exists, [`attach`] runs the configuration's plugins (ADD) and returns the
//! pod's addresses; [`detach`] runs DEL when the sandbox goes. The configuration is the first file
//! of the CNI conf dir, as with containerd ([`conflist`]); without one, boot's built-in bridge
//! network ([`default`]). Each plugin runs per the CNI spec ([`exec`], [`ops`], [`request`]); ADD
//! results are cached ([`cache`]) so that CHECK, DEL and reset ([`cleanup`], with the nat rules
//! the plugins leave in [`iptables`]) get their `prevResult` and the configuration ADD used.
//! [`sandbox`] is what both runtimes do with it: a pod's namespace made, attached and removed.
//!
//! Touches: the conf dir (read only, `/etc/cni/net.d`), the plugins in the bin dirs
//! (`/opt/cni/bin`, `/usr/lib/cni`), `<root>/var/lib/boot/cni/` (result cache, the default
//! network's IPAM state), and through the plugins: veths, the `boot0` bridge, iptables nat rules.

pub mod cache;
pub mod cleanup;
pub mod conflist;
pub mod default;
pub mod exec;
pub mod iptables;
pub mod ops;
pub mod request;
pub mod sandbox;

#[cfg(test)]
mod attach_tests;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use self::cache::{CachedAttachment, ResultCache, CACHE_KIND};
use self::conflist::{check_name, ConfigError, NetworkConfigList};
use self::default::DefaultNetwork;
use self::exec::{CniCommand, PluginFailure};
use self::ops::Attachment;
use self::request::{capability_args, pod_ip, pod_ips, PodArgs, POD_IFNAME};
use super::PodRef;
use crate::host::HostRoot;

/// The CNI conf dir of the kubelet and containerd.
pub const DEFAULT_CONF_DIR: &str = "/etc/cni/net.d";
/// Upstream's plugin directory, then Debian's (`containernetworking-plugins`, reference §12).
pub const DEFAULT_BIN_DIRS: &[&str] = &["/opt/cni/bin", "/usr/lib/cni"];

/// Where the configuration, the plugins and boot's CNI state are, and boot's default network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSettings {
    /// Read for a configuration; boot never writes there.
    pub conf_dir: PathBuf,
    /// Searched for plugins in order (`CNI_PATH`). Host paths, not under `--root`: plugins are
    /// installed software, like the binaries of the process runtime.
    pub bin_dirs: Vec<PathBuf>,
    /// `<root>/var/lib/boot/cni`: `results/` (the cache) and `networks/` (default IPAM state).
    pub state_dir: PathBuf,
    pub default_network: DefaultNetwork,
}

impl NetworkSettings {
    /// The defaults for a host root.
    pub fn for_root(root: &HostRoot) -> NetworkSettings {
        let state_dir = root.path("/var/lib/boot/cni");
        NetworkSettings {
            conf_dir: root.path(DEFAULT_CONF_DIR),
            bin_dirs: DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
            default_network: DefaultNetwork {
                name: default::DEFAULT_NETWORK_NAME.into(),
                bridge: default::DEFAULT_BRIDGE.into(),
                subnet: default::DEFAULT_SUBNET
                    .parse()
                    .expect("a valid default subnet"),
                ipam_dir: state_dir.join("networks"),
            },
            state_dir,
        }
    }

    pub fn cache(&self) -> ResultCache {
        ResultCache {
            dir: self.state_dir.join("results"),
        }
    }

    /// The configuration to use now: the conf dir's first file, or boot's default network.
    pub fn current_config(&self) -> Result<(NetworkConfigList, String), NetworkError> {
        match conflist::load_first(&self.conf_dir)? {
            Some((path, list)) => Ok((list, path.display().to_string())),
            None => Ok((
                self.default_network.conflist(),
                format!("boot's default bridge {}", self.default_network.bridge),
            )),
        }
    }
}

/// A sandbox's attachment to the pod network, as the sandbox record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodNetwork {
    /// The network's name (`boot` for the default one).
    pub network: String,
    /// `CNI_CONTAINERID`.
    pub sandbox_id: String,
    pub ifname: String,
    /// The addresses on the pod's interface; the first IPv4 one is the pod IP.
    pub ips: Vec<IpNet>,
    /// Where the configuration came from (a file, or boot's default).
    pub source: String,
    /// CHECK failed when the sandbox was found again (the attachment is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_error: Option<String>,
}

impl PodNetwork {
    pub fn pod_ip(&self) -> Option<IpAddr> {
        pod_ip(&self.ips)
    }

    /// One line for status: `boot: 10.88.0.5/16 on eth0 (boot's default bridge boot0)`.
    pub fn describe(&self) -> String {
        let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
        let mut line = format!(
            "{}: {} on {} ({})",
            self.network,
            ips.join(", "),
            self.ifname,
            self.source
        );
        if let Some(error) = &self.check_error {
            line.push_str(&format!("; CHECK failed: {error}"));
        }
        line
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("CNI configuration {0}")]
    Config(#[from] ConfigError),
    #[error("network {network}: plugin {plugin} {command} failed: {failure}")]
    Plugin {
        network: String,
        plugin: String,
        command: CniCommand,
        failure: PluginFailure,
    },
    #[error("network {network}: plugin {plugin} returned a result that is not JSON: {problem}")]
    BadResult {
        network: String,
        plugin: String,
        problem: String,
    },
    #[error("network {network}: the result gives the pod no address on {ifname}")]
    NoAddress { network: String, ifname: String },
    #[error("network {network}: {problem}")]
    Pod { network: String, problem: String },
    #[error("cannot write the CNI result cache in {dir}: {problem}")]
    Cache { dir: PathBuf, problem: String },
}

/// The sandbox ID CNI knows a pod by: its UID, which must follow the spec's container ID rule.
pub fn sandbox_id(pod_uid: &str) -> Result<String, String> {
    check_name(pod_uid)
        .map(|()| pod_uid.to_string())
        .map_err(|e| format!("its UID {pod_uid:?} cannot be a CNI container ID: {e}"))
}

/// Connects the pod's network namespace `netns` (already created and bind-mounted, as CNI
/// requires) to the pod network. Idempotent, for an agent that finds its sandboxes again: an
/// attachment the cache holds for this namespace is CHECKed and kept (a failed CHECK is shown);
/// one for another namespace is deleted and made anew. A failed ADD is followed by DEL, as the
/// spec requires.
pub fn attach(
    settings: &NetworkSettings,
    pod: PodRef<'_>,
    netns: &Path,
) -> Result<PodNetwork, NetworkError> {
    let (list, source) = settings.current_config()?;
    let pod_error = |problem: String| NetworkError::Pod {
        network: list.name.clone(),
        problem,
    };
    let sandbox_id = sandbox_id(pod.uid).map_err(pod_error)?;
    let cni_args = PodArgs {
        namespace: pod.namespace.to_string(),
        name: pod.full_name.to_string(),
        uid: pod.uid.to_string(),
        sandbox_id: sandbox_id.clone(),
    }
    .cni_args()
    .map_err(pod_error)?;
    let cache = settings.cache();
    for cached in cache.for_container(&sandbox_id) {
        if cached.netns == netns && cached.if_name == POD_IFNAME {
            if let Some(network) = recheck(settings, &cached) {
                return Ok(network);
            }
        }
        delete_cached(settings, &cached)?;
    }
    let capability_args = capability_args(pod.spec);
    let attachment = Attachment {
        list: &list,
        container_id: &sandbox_id,
        netns: Some(netns),
        ifname: POD_IFNAME,
        cni_args: &cni_args,
        capability_args: &capability_args,
        bin_dirs: &settings.bin_dirs,
    };
    let undo = |error: NetworkError| {
        let _ = attachment.del(None);
        error
    };
    let result = attachment.add().map_err(undo)?;
    let ips = pod_ips(&result, POD_IFNAME);
    if ips.is_empty() {
        return Err(undo(NetworkError::NoAddress {
            network: list.name.clone(),
            ifname: POD_IFNAME.into(),
        }));
    }
    let entry = CachedAttachment {
        kind: CACHE_KIND.into(),
        container_id: sandbox_id.clone(),
        network_name: list.name.clone(),
        if_name: POD_IFNAME.into(),
        netns: netns.to_path_buf(),
        cni_args: cni_args.clone(),
        capability_args: capability_args.clone(),
        config: list.to_json(),
        result,
    };
    if let Err(problem) = cache.save(&entry) {
        // Without the cache there would be no DEL with this result later: undo now.
        let _ = attachment.del(Some(&entry.result));
        return Err(NetworkError::Cache {
            dir: cache.dir,
            problem,
        });
    }
    Ok(PodNetwork {
        network: list.name,
        sandbox_id,
        ifname: POD_IFNAME.into(),
        ips,
        source,
        check_error: None,
    })
}

/// The cached attachment as the sandbox's network again, with CHECK's verdict.
fn recheck(settings: &NetworkSettings, cached: &CachedAttachment) -> Option<PodNetwork> {
    let list = cached.config_list().ok()?;
    let attachment = Attachment {
        list: &list,
        container_id: &cached.container_id,
        netns: Some(&cached.netns),
        ifname: &cached.if_name,
        cni_args: &cached.cni_args,
        capability_args: &cached.capability_args,
        bin_dirs: &settings.bin_dirs,
    };
    // A failed CHECK is reported, not repaired: DEL and ADD under a running pod would change its
    // IP (containerd and the kubelet never CHECK a sandbox they find again). portmap 1.1.1's
    // CHECK also fails for every IPv4-only pod when ip6tables exists.
    let check_error = attachment
        .check(&cached.result)
        .err()
        .map(|e| e.to_string());
    let ips = pod_ips(&cached.result, &cached.if_name);
    let source = if list == settings.default_network.conflist() {
        format!("boot's default bridge {}", settings.default_network.bridge)
    } else {
        "cached configuration".to_string()
    };
    (!ips.is_empty()).then(|| PodNetwork {
        network: list.name.clone(),
        sandbox_id: cached.container_id.clone(),
        ifname: cached.if_name.clone(),
        ips,
        source,
        check_error,
    })
}

/// Disconnects a sandbox: DEL with the configuration, arguments and result ADD cached, then the
/// cache entry goes. Tolerant of what is already gone: no cache entry is nothing to do, and a
/// namespace that no longer exists is passed as empty (plugins then only release what they hold
/// on the host). A failed DEL keeps the entry, so a later reset retries it.
pub fn detach(settings: &NetworkSettings, network: &PodNetwork) -> Result<(), NetworkError> {
    let cache = settings.cache();
    let path = cache.path(&network.network, &network.sandbox_id, &network.ifname);
    let cached = cache
        .for_container(&network.sandbox_id)
        .into_iter()
        .find(|c| cache.path(&c.network_name, &c.container_id, &c.if_name) == path);
    match cached {
        Some(cached) => delete_cached(settings, &cached),
        None => Ok(()),
    }
}

/// DEL for one cache entry; the entry is removed when DEL succeeds.
pub(crate) fn delete_cached(
    settings: &NetworkSettings,
    cached: &CachedAttachment,
) -> Result<(), NetworkError> {
    let list = cached.config_list().map_err(|problem| NetworkError::Pod {
        network: cached.network_name.clone(),
        problem: format!("its cached configuration is unusable: {problem}"),
    })?;
    let netns_alive = crate::runtime::linux::netns::is_mounted(&cached.netns);
    let attachment = Attachment {
        list: &list,
        container_id: &cached.container_id,
        netns: netns_alive.then_some(cached.netns.as_path()),
        ifname: &cached.if_name,
        cni_args: &cached.cni_args,
        capability_args: &cached.capability_args,
        bin_dirs: &settings.bin_dirs,
    };
    attachment.del(Some(&cached.result))?;
    settings.cache().remove(cached);
    Ok(())
}
