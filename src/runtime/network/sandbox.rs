//! A pod sandbox's network, the same for every runtime: a network namespace of its own
//! (bind-mounted at `<netns_dir>/<uid>`, found again after an agent restart) attached to the pod
//! network through CNI, or loopback only without pod networking; none under `hostNetwork`. And
//! its removal: CNI DEL while the namespace still exists, then the namespace. For `boot reset`,
//! [`remove_all`] deletes every attachment the CNI cache holds and portmap's unused chains.
//!
//! Touches: `<root>/run/boot/netns/`, and through [`attach`]/[`detach`] the CNI plugins.

use std::path::Path;

use super::{attach, cleanup, detach, iptables, NetworkSettings};
use crate::runtime::linux::netns;
use crate::runtime::{PodRef, Sandbox};

/// Gives `sandbox` the pod's network namespace, attached to the pod network when `settings` is
/// set, with notes for status. Idempotent: a namespace a running pod already uses is kept, also
/// when the attachment fails; a new one goes with the failure.
pub fn create(
    settings: Option<&NetworkSettings>,
    netns_dir: &Path,
    pod: PodRef<'_>,
    sandbox: &mut Sandbox,
) -> Result<(), String> {
    let path = netns_dir.join(pod.uid);
    let existed = netns::is_mounted(&path);
    netns::create(&path).map_err(|e| {
        format!(
            "cannot create its network namespace {}: {e}",
            path.display()
        )
    })?;
    let Some(settings) = settings else {
        sandbox.netns = Some(path);
        sandbox
            .notes
            .push("own network namespace, loopback only (pod networking off)".into());
        return Ok(());
    };
    match attach(settings, pod, &path) {
        Ok(attached) => {
            sandbox.pod_ip = attached.pod_ip();
            sandbox.notes.push("own network namespace".into());
            sandbox.notes.push(attached.describe());
            sandbox.network = Some(attached);
            sandbox.netns = Some(path);
            Ok(())
        }
        Err(e) => {
            if !existed {
                netns::remove(&path);
            }
            Err(format!("pod network: {e}"))
        }
    }
}

/// Removes a sandbox's pod network: CNI DEL while the namespace still exists, so the plugins
/// find the pod's interface (a failed DEL keeps its cache entry for reset), then the namespace —
/// only the very path `<netns_dir>/<uid>` a runtime makes: a record naming another is not acted
/// on.
pub fn remove(settings: Option<&NetworkSettings>, netns_dir: &Path, sandbox: &Sandbox) {
    if let (Some(settings), Some(attached)) = (settings, &sandbox.network) {
        let _ = detach(settings, attached);
    }
    let ours = netns_dir.join(sandbox.pod_uid.as_str());
    if let Some(path) = sandbox.netns.as_ref().filter(|p| **p == ours) {
        netns::remove(path);
    }
}

/// What [`remove_all`] did and could not do, one line each.
#[derive(Debug, Default)]
pub struct Teardown {
    pub done: Vec<String>,
    pub failed: Vec<String>,
}

/// CNI DEL of every attachment the cache holds (run while the pods' namespaces still exist, so
/// the plugins find their interfaces), the chains the plugins leak, boot's bridge once empty, and
/// portmap's shared chains once no pod uses them. Without pod networking there is nothing to do.
pub fn remove_all(settings: Option<&NetworkSettings>) -> Teardown {
    let Some(settings) = settings else {
        return Teardown::default();
    };
    let (mut done, mut failed) = cleanup::teardown(settings);
    let (chains_done, chains_failed) = iptables::remove_unused_hostport_chains();
    done.extend(chains_done);
    failed.extend(chains_failed);
    Teardown { done, failed }
}
