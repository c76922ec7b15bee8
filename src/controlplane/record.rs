//! The ledger of a control-plane node as init and join extend it: every file, directory and tree
//! they and the pods they start will create, recorded *before* it is created (so that `boot
//! reset` undoes exactly that, also after a command killed halfway), and the effective
//! configuration the agent reads.
//!
//! Touches: the ledger (`/var/lib/boot/ledger.json`); reads whether the recorded paths exist.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::host::layout::{self, EFFECTIVE_CONFIG};
use crate::host::ledger::{AgentLaunch, Ledger};
use crate::host::{write_all, HostRoot, RenderedFile, WriteError};
use crate::render::OutputLayout;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot record {path}: {source}")]
    Ledger {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// This node's ledger, loaded once and saved before every write.
#[derive(Debug)]
pub struct NodeLedger {
    ledger: Ledger,
    root: HostRoot,
    /// Whether boot's directories and the pods' trees are noted (once per command).
    node_noted: bool,
}

impl NodeLedger {
    /// The ledger of an earlier command on this root, or a new one.
    pub fn load(root: &HostRoot) -> Result<NodeLedger, RecordError> {
        let ledger = Ledger::load(root)
            .map_err(|source| RecordError::Ledger {
                path: Ledger::path(root),
                source,
            })?
            .unwrap_or_default();
        Ok(NodeLedger {
            ledger,
            root: root.clone(),
            node_noted: false,
        })
    }

    /// Whether the node's directories are noted already (by an earlier phase of this command).
    pub fn node_noted(&self) -> bool {
        self.node_noted
    }

    /// boot's directories, the trees the agent and the pods fill, and the ports: what any write
    /// of a control-plane node comes with. `manifests` are every static pod this command writes
    /// (their `DirectoryOrCreate` hostPath directories are the agent's to create).
    pub fn note_node(&mut self, cfg: &Config, layout: &OutputLayout, manifests: &[RenderedFile]) {
        let (ledger, root) = (&mut self.ledger, &self.root);
        for dir in [
            &layout.cert_dir,
            &layout.kubernetes_dir,
            &layout.manifest_dir,
        ] {
            ledger.note_prefix(dir);
        }
        let ledger_file = RenderedFile::new(Ledger::path(root), 0o600, Vec::new());
        ledger.note_files(root, std::slice::from_ref(&ledger_file));
        if let Some(local) = cfg.local_etcd() {
            let data_dir = root.path(&local.data_dir);
            ledger.note_prefix(&data_dir);
            // etcd's data is boot's only when boot creates the directory or finds it empty (an
            // ignored `DirAvailable` check must not hand someone's data over to reset).
            if missing_or_empty(&data_dir) {
                ledger.note_tree(root, &data_dir);
            }
        }
        for dir in [layout::STATE_DIR, layout::RUN_DIR, layout::LOG_DIR] {
            ledger.note_tree(root, &root.path(dir));
        }
        // Inside /var/lib/boot, listed on its own so that `reset --keep-images` can keep it.
        ledger.note_tree(root, &root.path(crate::image::STORE_PATH));
        // Pod logs: boot owns the whole directory when it creates it; an existing one (another
        // kubelet's) is left alone.
        let pod_logs = root.path("/var/log/pods");
        if !pod_logs.exists() {
            ledger.note_tree(root, &pod_logs);
        }
        // The API server's audit log directory fills with log files: a tree boot owns when it
        // creates it.
        let audit_log = root.path(crate::render::AUDIT_LOG_DIR);
        if cfg.boot.audit.enabled && !audit_log.exists() {
            ledger.note_tree(root, &audit_log);
        }
        for manifest in manifests {
            // Only missing ones beneath the root: under `--root`, the host's own directories are
            // not boot's, and an existing directory is not boot's either.
            for dir in host_path_volumes(&manifest.bytes) {
                if dir.starts_with(root.prefix()) && !dir.exists() {
                    ledger.note_dir(root, &dir);
                    ledger.note_prefix(&dir);
                }
            }
        }
        ledger.ports.extend(
            crate::preflight::component_ports(cfg)
                .into_iter()
                .map(|(_, port)| port),
        );
        self.node_noted = true;
    }

    /// Files about to be written (and the directories they will create).
    pub fn note_files(&mut self, files: &[RenderedFile]) {
        self.ledger.note_files(&self.root, files);
    }

    /// One of boot's directories beyond the fixed ones (a join's external etcd client files).
    pub fn note_prefix(&mut self, dir: &Path) {
        self.ledger.note_prefix(dir);
    }

    /// The kubelet's configuration file, and `/var/lib/kubelet` (its serving certificate) when
    /// boot creates it; an existing one (a kubelet's) is left alone, as for the pod logs.
    pub fn note_kubelet_files(&mut self, file: &RenderedFile) {
        let (ledger, root) = (&mut self.ledger, &self.root);
        let kubelet_dir = root.path("/var/lib/kubelet");
        if !kubelet_dir.exists() {
            ledger.note_tree(root, &kubelet_dir);
        }
        ledger.note_files(root, std::slice::from_ref(file));
        ledger.note_tree(
            root,
            &root.path(crate::node::kubelet_config::KUBELET_PKI_DIR),
        );
    }

    /// How the agent is started, and the unit file a systemd launch writes.
    pub fn note_agent(&mut self, launch: AgentLaunch) {
        if let AgentLaunch::Systemd { unit_file, .. } = &launch {
            let unit = RenderedFile::new(unit_file.clone(), 0o644, Vec::new());
            self.ledger.note_files(&self.root, &[unit]);
        }
        self.ledger.agent = Some(launch);
    }

    /// Saves the ledger. What reset would refuse to remove (a missing top-level directory a
    /// hostPath names) is not recorded: reset leaves it, as kubeadm does.
    pub fn save(&mut self) -> Result<(), RecordError> {
        let protected = layout::Protected::for_host(&self.root);
        self.ledger
            .created_dirs
            .retain(|dir| !protected.contains(dir));
        self.ledger.prefixes.retain(|dir| !protected.contains(dir));
        self.ledger
            .save(&self.root)
            .map_err(|source| RecordError::Ledger {
                path: Ledger::path(&self.root),
                source,
            })
    }

    /// Notes `files`, saves the ledger, then writes them all at once (every file staged before
    /// any is renamed into place, so a failure leaves none of them behind).
    pub fn write(&mut self, files: &[RenderedFile]) -> Result<(), RecordError> {
        self.note_files(files);
        self.save()?;
        write_all(files)?;
        Ok(())
    }
}

fn missing_or_empty(dir: &Path) -> bool {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// The `DirectoryOrCreate` hostPath volumes of a manifest: the agent creates them when missing.
fn host_path_volumes(manifest: &[u8]) -> Vec<PathBuf> {
    let Ok(pod) = serde_yaml::from_slice::<k8s_openapi::api::core::v1::Pod>(manifest) else {
        return vec![];
    };
    pod.spec
        .and_then(|s| s.volumes)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.host_path)
        .filter(|h| h.type_.as_deref() == Some("DirectoryOrCreate"))
        .map(|h| PathBuf::from(h.path))
        .collect()
}

/// The effective configuration as YAML documents: what the agent runs with.
pub fn effective_config(cfg: &Config) -> String {
    let docs = [
        serde_yaml::to_string(&cfg.init),
        serde_yaml::to_string(&cfg.cluster),
        serde_yaml::to_string(&cfg.boot),
    ];
    let mut text = docs
        .into_iter()
        .map(|d| d.expect("configuration serializes"))
        .collect::<Vec<_>>()
        .join("---\n");
    if cfg.static_pod_path != "/etc/kubernetes/manifests"
        || cfg.kubelet_port != crate::node::kubelet_config::DEFAULT_PORT
        || cfg.kubelet_address != "0.0.0.0"
    {
        text.push_str(&format!(
            "---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: {}\naddress: {}\nport: {}\n",
            cfg.static_pod_path, cfg.kubelet_address, cfg.kubelet_port
        ));
    }
    text
}

/// [`effective_config`] as the file the agent is started with.
pub fn effective_config_file(cfg: &Config, root: &HostRoot) -> RenderedFile {
    RenderedFile::new(root.path(EFFECTIVE_CONFIG), 0o600, effective_config(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_or_create_host_paths_are_the_agents_to_create() {
        let manifest = b"apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: c, image: i}]\n  volumes:\n  - {name: a, hostPath: {path: /var/lib/a, type: DirectoryOrCreate}}\n  - {name: b, hostPath: {path: /etc/b, type: Directory}}\n";
        assert_eq!(host_path_volumes(manifest), [PathBuf::from("/var/lib/a")]);
        assert!(host_path_volumes(b"not: [a pod").is_empty());
    }

    #[test]
    fn a_write_is_recorded_before_it_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path()).unwrap();
        let mut ledger = NodeLedger::load(&root).unwrap();
        let file = RenderedFile::new(root.path("/etc/kubernetes/pki/ca.key"), 0o600, "k");
        ledger.write(std::slice::from_ref(&file)).unwrap();
        let saved = Ledger::load(&root).unwrap().unwrap();
        assert!(saved.files.contains(&file.path));
        assert!(saved
            .created_dirs
            .contains(&root.path("/etc/kubernetes/pki")));
        assert_eq!(std::fs::read(&file.path).unwrap(), b"k");
        // Written again, the file is boot's already: the ledger keeps it, nothing else changes.
        let mut again = NodeLedger::load(&root).unwrap();
        again.write(std::slice::from_ref(&file)).unwrap();
        assert_eq!(Ledger::load(&root).unwrap().unwrap(), saved);
    }
}
