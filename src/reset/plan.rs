//! What `boot reset` will remove: exactly what the init ledger lists (once [`validate`] accepted
//! it), or kubeadm's default paths when there is no ledger. Pure: the plan is computed from the
//! ledger and printed by `--dry-run`.

use std::fmt;
use std::path::PathBuf;

use super::validate::{validate, LedgerError};
use crate::host::ledger::{AgentLaunch, Ledger};
use crate::host::HostRoot;
use crate::runtime::network::NetworkSettings;

/// The files kubeadm's reset deletes under `/etc/kubernetes` (cleanup-node).
const KUBECONFIGS: &[&str] = &[
    "admin.conf",
    "super-admin.conf",
    "kubelet.conf",
    "bootstrap-kubelet.conf",
    "controller-manager.conf",
    "scheduler.conf",
];
const MANIFESTS: &[&str] = &[
    "etcd.yaml",
    "kube-apiserver.yaml",
    "kube-controller-manager.yaml",
    "kube-scheduler.yaml",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetPlan {
    pub agent: Option<AgentLaunch>,
    /// Where the agent recorded its pods (`/var/lib/boot/agent`).
    pub records_dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// Emptied (their content is boot's); removed too when listed in `dirs`.
    pub trees: Vec<PathBuf>,
    /// Removed when empty at the end, deepest first.
    pub dirs: Vec<PathBuf>,
    pub ledger: PathBuf,
    pub ports: Vec<u16>,
    /// Without a ledger the plan is kubeadm's default paths.
    pub from_ledger: bool,
    /// boot's pod network: every cached CNI attachment is deleted, then the default bridge.
    pub network: NetworkSettings,
    /// Paths inside `trees` that stay (`--keep-images`: the image store).
    pub kept: Vec<PathBuf>,
}

impl ResetPlan {
    /// Keeps the image store (`boot reset --keep-images`): it is not emptied, and the
    /// directories leading to it are not removed.
    pub fn keep_images(mut self, root: &HostRoot) -> Self {
        let store = root.path(crate::image::STORE_PATH);
        self.trees.retain(|t| *t != store);
        self.dirs.retain(|d| !store.starts_with(d));
        self.kept.push(store);
        self
    }

    /// Keeps the etcd snapshot directory (`boot reset --keep-snapshots`): a node reset to be
    /// initialised again can restore from them.
    pub fn keep_snapshots(mut self, directory: std::path::PathBuf) -> Self {
        self.trees.retain(|t| *t != directory);
        self.dirs.retain(|d| !directory.starts_with(d));
        // Inside a tree that is emptied: kept as the image store is.
        self.kept.push(directory);
        self
    }
}

/// The plan for `root`; a ledger naming anything that is not boot's is refused as a whole.
pub fn plan(root: &HostRoot, ledger: Option<&Ledger>) -> Result<ResetPlan, LedgerError> {
    let ledger_path = Ledger::path(root);
    Ok(match ledger {
        Some(l) => {
            validate(l, root)?;
            let mut dirs: Vec<PathBuf> = l.created_dirs.iter().cloned().collect();
            // Deepest first.
            dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
            let mut files: Vec<PathBuf> = l
                .files
                .iter()
                .filter(|f| **f != ledger_path)
                .cloned()
                .collect();
            // The unit file, also when an older ledger did not list it among the files.
            if let Some(AgentLaunch::Systemd { unit_file, .. }) = &l.agent {
                if !files.contains(unit_file) {
                    files.push(unit_file.clone());
                }
            }
            ResetPlan {
                agent: l.agent.clone(),
                records_dir: root.path("/var/lib/boot/agent"),
                files,
                trees: l.owned_trees.iter().cloned().collect(),
                dirs,
                ledger: ledger_path,
                ports: l.ports.iter().copied().collect(),
                from_ledger: true,
                network: NetworkSettings::for_root(root),
                kept: vec![],
            }
        }
        None => {
            let k8s = root.path("/etc/kubernetes");
            let mut files: Vec<PathBuf> = KUBECONFIGS.iter().map(|f| k8s.join(f)).collect();
            files.extend(MANIFESTS.iter().map(|m| k8s.join("manifests").join(m)));
            files.push(root.path("/etc/systemd/system/boot-agent.service"));
            files.push(root.path(crate::node::kubelet_config::KUBELET_CONFIG));
            ResetPlan {
                agent: Some(AgentLaunch::Detached {
                    pid_file: root.path("/run/boot/agent.pid"),
                    log_file: root.path("/var/log/boot/agent.log"),
                }),
                records_dir: root.path("/var/lib/boot/agent"),
                files,
                trees: [
                    "/etc/kubernetes/pki",
                    "/etc/kubernetes/encryption",
                    "/etc/kubernetes/audit",
                    "/var/log/kubernetes/audit",
                    "/var/lib/etcd",
                    "/var/lib/boot",
                    "/run/boot",
                    "/var/log/boot",
                    crate::node::kubelet_config::KUBELET_PKI_DIR,
                ]
                .iter()
                .map(|p| root.path(p))
                .collect(),
                dirs: vec![],
                ledger: ledger_path,
                ports: vec![],
                from_ledger: false,
                network: NetworkSettings::for_root(root),
                kept: vec![],
            }
        }
    })
}

impl fmt::Display for ResetPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = if self.from_ledger {
            "the init ledger"
        } else {
            "no ledger found: kubeadm's default paths"
        };
        writeln!(f, "[reset] Plan ({source}):")?;
        match &self.agent {
            Some(AgentLaunch::Systemd { unit, .. }) => writeln!(f, "  stop and disable {unit}")?,
            Some(AgentLaunch::Detached { pid_file, .. }) => {
                writeln!(f, "  stop the agent whose pid is in {}", pid_file.display())?
            }
            Some(AgentLaunch::Foreground) | None => {
                writeln!(f, "  stop any agent answering on the status socket")?
            }
        }
        writeln!(f, "  stop every pod recorded in {} (SIGTERM, grace period, SIGKILL) and remove its cgroups", self.records_dir.display())?;
        writeln!(
            f,
            "  delete every pod network attachment cached in {} (CNI DEL), then the bridge {}",
            self.network.cache().dir.display(),
            self.network.default_network.bridge
        )?;
        for file in &self.files {
            writeln!(f, "  remove {}", file.display())?;
        }
        for tree in &self.trees {
            writeln!(f, "  empty {}", tree.display())?;
        }
        for kept in &self.kept {
            writeln!(f, "  keep {}", kept.display())?;
        }
        for dir in &self.dirs {
            writeln!(f, "  remove directory {} (if empty)", dir.display())?;
        }
        write!(f, "  remove {}", self.ledger.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_follows_the_ledger_or_defaults() {
        let root = HostRoot::under("/tmp/r").unwrap();
        let mut ledger = Ledger::default();
        ledger.files.insert(root.path("/etc/kubernetes/admin.conf"));
        ledger.files.insert(Ledger::path(&root));
        ledger.created_dirs.insert(root.path("/etc/kubernetes"));
        ledger
            .created_dirs
            .insert(root.path("/etc/kubernetes/manifests"));
        let p = plan(&root, Some(&ledger)).unwrap();
        assert_eq!(
            p.files,
            [root.path("/etc/kubernetes/admin.conf")],
            "the ledger is removed last, not as a file"
        );
        assert_eq!(
            p.dirs[0],
            root.path("/etc/kubernetes/manifests"),
            "deepest first"
        );
        let fallback = plan(&root, None).unwrap();
        assert!(!fallback.from_ledger && fallback.trees.contains(&root.path("/var/lib/etcd")));
        assert!(fallback.to_string().contains("no ledger found"));
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn the_systemd_unit_file_is_removed_and_a_foreign_unit_refused() {
        let root = HostRoot::under("/tmp/r").unwrap();
        let unit_file = root.path("/etc/systemd/system/boot-agent.service");
        let mut ledger = Ledger {
            agent: Some(AgentLaunch::Systemd {
                unit: "boot-agent.service".into(),
                unit_file: unit_file.clone(),
            }),
            ..Ledger::default()
        };
        assert_eq!(plan(&root, Some(&ledger)).unwrap().files, [unit_file]);
        ledger.agent = Some(AgentLaunch::Systemd {
            unit: "ssh.service".into(),
            unit_file: root.path("/etc/systemd/system/ssh.service"),
        });
        assert!(plan(&root, Some(&ledger)).is_err());
    }
}
