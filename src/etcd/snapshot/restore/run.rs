//! The restore's steps, each recorded in the journal before the next, and its roll-back.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::journal::{self, Journal, Step, CONTROL_PLANE};
use super::pod::{self, EtcdPod};
use super::RestoreError;
use crate::agent::watch;
use crate::etcd::snapshot::{check, Checked};
use crate::etcd::{local::LocalMember, members, EtcdClient};
use crate::host::HostRoot;
use crate::version::Version;

/// A graceful stop of the API server takes up to its termination grace period.
const STOP_WAIT: Duration = Duration::from_secs(120);
/// etcd restores a few hundred MB a second; a large store takes minutes.
const RESTORE_WAIT: Duration = Duration::from_secs(600);
/// kubeadm's `UpgradeManifestTimeout`: how long a static pod may take to come back.
const READY_WAIT: Duration = Duration::from_secs(300);
/// A member answering on its peer URL is running.
const PEER_DIAL: Duration = Duration::from_secs(1);
const MAX_MANIFEST: u64 = 1024 * 1024;

/// Everything a restore touches, resolved under the root.
#[derive(Debug, Clone)]
pub struct Restore {
    pub snapshot: PathBuf,
    pub root: HostRoot,
    pub manifest_dir: PathBuf,
    pub kubernetes_dir: PathBuf,
    pub journal_path: PathBuf,
    pub agent_socket: PathBuf,
    /// The etcd release this node runs: it picks the restore tool.
    pub etcd_release: Version,
}

/// A checked snapshot and the journal that will carry the restore out.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub checked: Checked,
    pub journal: Journal,
    /// An interrupted restore is continued.
    pub resumed: bool,
    /// The other members (`name (peer URL)`), stopped; they must re-join.
    pub others: Vec<String>,
    pub etcd: EtcdPod,
}

/// What a finished restore leaves.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kept: PathBuf,
    pub others: Vec<String>,
    pub took: Duration,
}

impl Restore {
    /// Checks the snapshot, the agent, the etcd manifest and the other members; changes nothing.
    pub async fn prepare(&self) -> Result<Prepared, RestoreError> {
        let checked = check(&self.snapshot)?;
        let existing = journal::read(&self.journal_path, &self.kubernetes_dir)
            .map_err(|reason| self.journal_error(reason))?;
        crate::agent::status::fetch(&self.agent_socket)
            .await
            .map_err(|e| {
                self.manifest_error(
                    &self.agent_socket,
                    format!("the agent does not answer: {e}"),
                )
            })?;
        if let Some(journal) = existing {
            if journal.sha256 != checked.sha256 {
                return Err(RestoreError::OtherSnapshot {
                    journal: journal.sha256[..12].to_string(),
                    given: self.snapshot.display().to_string(),
                });
            }
            let (_, etcd) = self.etcd_manifest(Some(&journal.stash))?;
            if self.root.path(&etcd.data_dir) != journal.data_dir {
                return Err(self.journal_error(format!(
                    "it names the data directory {}, the etcd manifest {}",
                    journal.data_dir.display(),
                    etcd.data_dir.display()
                )));
            }
            return Ok(Prepared {
                checked,
                journal,
                resumed: true,
                others: Vec::new(),
                etcd,
            });
        }
        let (path, etcd) = self.etcd_manifest(None)?;
        let others = self.other_members(&path, &etcd).await?;
        let data_dir = self.root.path(&etcd.data_dir);
        let stamp = crate::etcd::snapshot::list::stamp(crate::certs::unix(SystemTime::now()));
        let (stash, staging, kept) = Journal::paths(&self.kubernetes_dir, &data_dir, &stamp);
        let moved = CONTROL_PLANE
            .iter()
            .filter(|m| self.manifest_dir.join(m).is_file())
            .map(|m| m.to_string())
            .collect();
        Ok(Prepared {
            checked: checked.clone(),
            journal: Journal {
                sha256: checked.sha256,
                step: Step::Stop,
                stash,
                data_dir,
                staging,
                kept,
                moved,
            },
            resumed: false,
            others,
            etcd,
        })
    }

    /// Carries the restore out (or on); `progress` gets one line per thing done.
    pub async fn run(
        &self,
        prepared: Prepared,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Outcome, RestoreError> {
        let started = Instant::now();
        let Prepared {
            mut journal,
            etcd,
            others,
            ..
        } = prepared;
        self.record(&journal)?;
        loop {
            let next = match journal.step {
                Step::Stop => match self.stop(&journal, progress).await {
                    Ok(()) => Step::Restore,
                    Err(cause) => {
                        return Err(self
                            .roll_back(&journal, "stopping the control plane", cause, progress)
                            .await)
                    }
                },
                Step::Restore => match self.restore(&journal, &etcd, progress).await {
                    Ok(()) => Step::Swap,
                    Err(cause) => {
                        return Err(self
                            .roll_back(&journal, "restoring the snapshot", cause, progress)
                            .await)
                    }
                },
                Step::Swap => {
                    self.swap(&journal)?;
                    progress(&format!(
                        "The previous data is kept in {}; the restored data is in {}",
                        journal.kept.display(),
                        journal.data_dir.display()
                    ));
                    Step::Start
                }
                Step::Start => {
                    self.start(&journal, progress).await?;
                    let _ = std::fs::remove_dir_all(&journal.staging);
                    let _ = std::fs::remove_dir(&journal.stash);
                    journal::remove(&self.journal_path).map_err(|r| self.journal_error(r))?;
                    return Ok(Outcome {
                        kept: journal.kept,
                        others,
                        took: started.elapsed(),
                    });
                }
            };
            journal.step = next;
            self.record(&journal)?;
        }
    }

    async fn stop(
        &self,
        journal: &Journal,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), String> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&journal.stash)
            .map_err(|e| format!("{}: {e}", journal.stash.display()))?;
        for name in &journal.moved {
            let manifest = self.manifest_dir.join(name);
            if manifest.exists() {
                rename(&manifest, &journal.stash.join(name))?;
            }
        }
        progress(&format!(
            "Stopping {} (their manifests wait in {})",
            journal.moved.join(", "),
            journal.stash.display()
        ));
        for name in &journal.moved {
            watch::gone(&self.agent_socket, &self.manifest_dir.join(name), STOP_WAIT)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    async fn restore(
        &self,
        journal: &Journal,
        etcd: &EtcdPod,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), String> {
        let staging = &journal.staging;
        match std::fs::remove_dir_all(staging) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("{}: {e}", staging.display()))
            }
            _ => {}
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(staging)
            .map_err(|e| format!("{}: {e}", staging.display()))?;
        // The restore reads a copy beside the data: the user's file may change or live on a
        // mount the pod does not see, and the copy is what is checked.
        let copy = staging.join("snapshot.db");
        std::fs::copy(&self.snapshot, &copy).map_err(|e| format!("{}: {e}", copy.display()))?;
        let copied = check(&copy).map_err(|e| e.to_string())?;
        if copied.sha256 != journal.sha256 {
            return Err(format!(
                "{} changed while it was copied",
                self.snapshot.display()
            ));
        }
        let command = pod::command(&self.etcd_release, etcd, &copy, &staging.join("data"));
        progress(&format!("Restoring: {}", command.join(" ")));
        let manifest = self.manifest_dir.join(pod::MANIFEST);
        crate::host::write_all(&[crate::host::RenderedFile::new(
            &manifest,
            0o600,
            pod::manifest(etcd, &command, staging),
        )])
        .map_err(|e| e.to_string())?;
        let ran = watch::finished(&self.agent_socket, &manifest, RESTORE_WAIT).await;
        remove_manifest(&manifest)?;
        watch::gone(&self.agent_socket, &manifest, STOP_WAIT)
            .await
            .map_err(|e| e.to_string())?;
        ran.map_err(|e| e.to_string())?;
        if !staging.join("data/member").is_dir() {
            return Err(format!(
                "the restore tool succeeded but left no {}",
                staging.join("data/member").display()
            ));
        }
        progress("The snapshot is restored into a new single-member cluster");
        Ok(())
    }

    /// Idempotent: each rename happens once, whichever of them an interruption left done.
    fn swap(&self, journal: &Journal) -> Result<(), RestoreError> {
        let restored = journal.staging.join("data");
        if !journal.kept.exists() && journal.data_dir.exists() {
            rename(&journal.data_dir, &journal.kept).map_err(|e| self.io(&journal.data_dir, e))?;
        }
        if !journal.data_dir.exists() {
            rename(&restored, &journal.data_dir).map_err(|e| self.io(&restored, e))?;
        }
        Ok(())
    }

    async fn start(
        &self,
        journal: &Journal,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), RestoreError> {
        for name in &journal.moved {
            let stashed = journal.stash.join(name);
            if stashed.exists() {
                rename(&stashed, &self.manifest_dir.join(name))
                    .map_err(|e| self.io(&stashed, e))?;
            }
        }
        for name in &journal.moved {
            let started = Instant::now();
            let manifest = self.manifest_dir.join(name);
            watch::ready(&self.agent_socket, &manifest, None, READY_WAIT)
                .await
                .map_err(|cause| RestoreError::Stuck {
                    step: format!("starting {}", name.trim_end_matches(".yaml")),
                    cause,
                })?;
            progress(&format!(
                "{} is ready ({:.1}s)",
                name.trim_end_matches(".yaml"),
                started.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Puts everything back as it was before the data moved; returns the error to report.
    async fn roll_back(
        &self,
        journal: &Journal,
        step: &str,
        cause: String,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> RestoreError {
        progress(&format!("{step} failed: {cause}; rolling back"));
        let restore_pod = self.manifest_dir.join(pod::MANIFEST);
        let mut problems = Vec::new();
        if let Err(e) = remove_manifest(&restore_pod) {
            problems.push(e);
        }
        for name in &journal.moved {
            let stashed = journal.stash.join(name);
            if stashed.exists() {
                if let Err(e) = rename(&stashed, &self.manifest_dir.join(name)) {
                    problems.push(e);
                }
            }
        }
        let _ = std::fs::remove_dir_all(&journal.staging);
        if problems.is_empty() {
            let _ = std::fs::remove_dir(&journal.stash);
            let _ = journal::remove(&self.journal_path);
            for name in &journal.moved {
                let _ = watch::ready(
                    &self.agent_socket,
                    &self.manifest_dir.join(name),
                    None,
                    READY_WAIT,
                )
                .await;
            }
            return RestoreError::RolledBack {
                step: step.to_string(),
                cause,
            };
        }
        self.journal_error(format!(
            "{step} failed ({cause}) and the roll-back did not finish: {}",
            problems.join("; ")
        ))
    }

    /// This node's etcd manifest, from the manifest directory or (during a restore) the stash.
    fn etcd_manifest(&self, stash: Option<&Path>) -> Result<(PathBuf, EtcdPod), RestoreError> {
        let mut path = self.manifest_dir.join("etcd.yaml");
        if let Some(stash) = stash.filter(|s| s.join("etcd.yaml").is_file()) {
            path = stash.join("etcd.yaml");
        }
        let bytes = crate::host::read_bounded(&path, MAX_MANIFEST, crate::host::Links::Refuse)
            .map_err(|e| self.manifest_error(&path, e.to_string()))?;
        let etcd = EtcdPod::from_manifest(&bytes).map_err(|r| self.manifest_error(&path, r))?;
        Ok((path, etcd))
    }

    /// The other members (from etcd when it answers, else the manifest's `--initial-cluster`);
    /// refused when any of them answers on its peer URL.
    async fn other_members(
        &self,
        path: &Path,
        etcd: &EtcdPod,
    ) -> Result<Vec<String>, RestoreError> {
        let mut peers: Vec<(String, String)> = etcd.initial_cluster.clone();
        let bytes = crate::host::read_bounded(path, MAX_MANIFEST, crate::host::Links::Refuse)
            .map_err(|e| self.manifest_error(path, e.to_string()))?;
        if let Ok(member) = LocalMember::from_manifest(path, &bytes, self.root.prefix()) {
            let listed = async {
                let client = EtcdClient::new(
                    &member.client_urls,
                    &member.client_files,
                    Duration::from_secs(3),
                )
                .ok()?;
                members::list(&client).await.ok()
            };
            if let Some(listed) = listed.await {
                peers = listed
                    .into_iter()
                    .filter_map(|m| Some((m.name, m.peer_urls.first()?.clone())))
                    .collect();
            }
        }
        peers.retain(|(name, peer)| *name != etcd.name && *peer != etcd.peer_url);
        let mut running = Vec::new();
        for (name, peer) in &peers {
            if answers(peer).await {
                running.push(format!("{name} ({peer})"));
            }
        }
        if !running.is_empty() {
            return Err(RestoreError::OthersRunning { running });
        }
        Ok(peers
            .into_iter()
            .map(|(name, peer)| format!("{name} ({peer})"))
            .collect())
    }

    fn record(&self, journal: &Journal) -> Result<(), RestoreError> {
        journal::write(&self.journal_path, journal).map_err(|r| self.journal_error(r))
    }

    fn journal_error(&self, reason: String) -> RestoreError {
        RestoreError::Journal {
            path: self.journal_path.clone(),
            reason,
        }
    }

    fn manifest_error(&self, path: &Path, reason: String) -> RestoreError {
        RestoreError::Manifest {
            path: path.to_path_buf(),
            reason,
        }
    }

    fn io(&self, path: &Path, reason: String) -> RestoreError {
        RestoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(reason),
        }
    }
}

/// Whether something accepts a connection at a member's peer URL (`https://host:port`).
async fn answers(peer: &str) -> bool {
    let Ok(url) = crate::etcd::ClientUrl::parse(peer) else {
        return false;
    };
    let authority = url.to_string();
    let address = authority.trim_start_matches("https://").to_string();
    matches!(
        tokio::time::timeout(PEER_DIAL, tokio::net::TcpStream::connect(address)).await,
        Ok(Ok(_))
    )
}

fn rename(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::rename(from, to)
        .map_err(|e| format!("cannot move {} to {}: {e}", from.display(), to.display()))?;
    if let Some(dir) = to.parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    Ok(())
}

fn remove_manifest(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("cannot remove {}: {e}", path.display()))
        }
        _ => Ok(()),
    }
}
