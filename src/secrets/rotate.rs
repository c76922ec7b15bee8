//! `boot secrets rotate-key`: the four steps of a safe key rotation, each recorded in the
//! [`journal`] before the next begins, with the API server loading the file before anything
//! depends on it — so it never runs with a configuration that cannot decrypt what etcd holds.
//! The file has one reader (this node's API server), so adding the new key and promoting it share
//! one load, as Kubernetes' rotation guide allows for a single server.
//!
//! "Loading" is the API server's automatic reload when its manifest has
//! `--encryption-provider-config-automatic-reload=true` (boot's default; kube-apiserver v1.36
//! re-reads the file once a minute, no outage), otherwise — or with `--restart` — a restart through
//! the agent as certificate renewal does (about 15 s without the API). Either way the load is
//! confirmed by the `last_config_info` metric naming the file's sha256, never assumed.
//!
//! Touches: the encryption configuration the manifest names (atomically, 0600), the journal,
//! and (restart mode) the API server's manifest annotation.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;
use sha2::{Digest, Sha256};

use super::api::{self, ApiError};
use super::config::{self, ConfigError, EncryptionConfig, KeyPlace};
use super::journal::{self, Journal, Step};
use crate::certs::RestartError;
use crate::etcd::{ClientFiles, EtcdClient, EtcdError};

/// The annotation a restart for a new encryption configuration sets on the API server's manifest.
pub const LOADED_ANNOTATION: &str = "boot/encryption-config-loaded-at";
/// The automatic reload re-reads the file every minute (kube-apiserver's
/// `EncryptionConfigFileChangePollDuration`); a little more for the reload itself.
const RELOAD_WAIT: Duration = Duration::from_secs(90);
/// One etcd range request (a page of at most 200 values).
const ETCD_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A restarted API server is up in about 15 s on one node; etcd's storage check can take longer.
const RESTART_WAIT: Duration = Duration::from_secs(180);
const POLL: Duration = Duration::from_secs(1);
/// An encryption configuration is a few hundred bytes.
const MAX_CONFIG: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("no kube-apiserver manifest in {dir}")]
    NoApiServer { dir: PathBuf },
    #[error(
        "encryption at rest is not configured: {manifest} has no --encryption-provider-config"
    )]
    NotConfigured { manifest: PathBuf },
    #[error("{manifest}: --{flag} is missing or not usable")]
    Flag { manifest: PathBuf, flag: String },
    #[error("{path}: cannot rotate its key: {source}")]
    Config {
        path: PathBuf,
        #[source]
        source: ConfigError,
    },
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("rotation journal {path}: {reason}")]
    Journal { path: PathBuf, reason: String },
    #[error(
        "{path} was changed during the rotation: the step \"{step}\" cannot continue with key \
         {key} {place}"
    )]
    Changed {
        path: PathBuf,
        step: &'static str,
        key: String,
        place: String,
    },
    #[error(
        "{} API servers serve this cluster ({}): rotate-key changes the encryption configuration of this node's only",
        addresses.len(), addresses.join(", ")
    )]
    SeveralApiServers { addresses: Vec<String> },
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(
        "the API server did not load {path} (sha256:{want}) within {waited:?}; it reports {loaded}"
    )]
    NotLoaded {
        path: PathBuf,
        want: String,
        waited: Duration,
        loaded: String,
    },
    #[error(transparent)]
    Restart(#[from] RestartError),
    #[error("{count} {resource} in etcd are still not encrypted with {key} after two re-writes, e.g. {example}")]
    Stragglers {
        count: usize,
        resource: String,
        key: String,
        example: String,
    },
}

/// How a new shape of the file reaches the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    Automatic,
    Restart,
}

/// Everything a rotation touches, found from the API server's manifest.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub config_path: PathBuf,
    pub journal_path: PathBuf,
    pub kubeconfig: PathBuf,
    pub apiserver_manifest: PathBuf,
    pub agent_socket: PathBuf,
    pub etcd: EtcdClient,
    /// `--etcd-prefix`, `/registry` by default.
    pub etcd_prefix: String,
    pub reload: Reload,
}

impl Rotation {
    /// Reads the kube-apiserver manifest in `manifest_dir`; `restart` forces restarts.
    pub fn from_manifests(
        manifest_dir: &Path,
        kubeconfig: PathBuf,
        journal_path: PathBuf,
        agent_socket: PathBuf,
        restart: bool,
    ) -> Result<Rotation, SecretsError> {
        let (manifest, pod) = crate::certs::read_manifests(manifest_dir)
            .into_iter()
            .find(|(_, pod)| pod.metadata.name.as_deref() == Some("kube-apiserver"))
            .ok_or_else(|| SecretsError::NoApiServer {
                dir: manifest_dir.to_path_buf(),
            })?;
        let words: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter(|c| c.name == "kube-apiserver")
            .flat_map(|c| c.command.iter().flatten().chain(c.args.iter().flatten()))
            .cloned()
            .collect();
        let flag = |name: &str| {
            let wanted = format!("--{name}=");
            words
                .iter()
                .rev()
                .find_map(|w| w.strip_prefix(&wanted).map(str::to_string))
        };
        let path_flag = |name: &str| {
            flag(name)
                .filter(|p| Path::new(p).is_absolute())
                .map(PathBuf::from)
                .ok_or_else(|| SecretsError::Flag {
                    manifest: manifest.clone(),
                    flag: name.to_string(),
                })
        };
        let config_path =
            path_flag("encryption-provider-config").map_err(|_| SecretsError::NotConfigured {
                manifest: manifest.clone(),
            })?;
        let endpoint = flag("etcd-servers")
            .and_then(|s| s.split(',').next().map(str::to_string))
            .filter(|s| s.starts_with("https://"))
            .ok_or_else(|| SecretsError::Flag {
                manifest: manifest.clone(),
                flag: "etcd-servers".into(),
            })?;
        let files = ClientFiles {
            ca: path_flag("etcd-cafile")?,
            cert: path_flag("etcd-certfile")?,
            key: path_flag("etcd-keyfile")?,
        };
        let etcd = EtcdClient::new(&[endpoint], &files, ETCD_CALL_TIMEOUT)?;
        let automatic =
            flag("encryption-provider-config-automatic-reload").as_deref() == Some("true");
        Ok(Rotation {
            config_path,
            journal_path,
            kubeconfig,
            agent_socket,
            etcd,
            etcd_prefix: flag("etcd-prefix").unwrap_or_else(|| "/registry".into()),
            reload: if automatic && !restart {
                Reload::Automatic
            } else {
                Reload::Restart
            },
            apiserver_manifest: manifest,
        })
    }

    /// Runs or continues a rotation; returns the new key's name.
    pub async fn run(
        &self,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<String, SecretsError> {
        let client = api::client(&self.kubeconfig).await?;
        let mut config = self.read_config()?;
        let mut journal = match journal::read(&self.journal_path).map_err(|r| self.journal(r))? {
            Some(journal) => {
                progress(&format!(
                    "Continuing the rotation to {} recorded in {}: {}",
                    journal.new_key,
                    self.journal_path.display(),
                    journal.step.describe()
                ));
                journal
            }
            None => self.begin(&client, &config, progress).await?,
        };
        let new = journal.new_key.clone();
        loop {
            let place = config.place(&new);
            if !place.is_some_and(|p| journal.step.accepts(p)) {
                return Err(SecretsError::Changed {
                    path: self.config_path.clone(),
                    step: journal.step.describe(),
                    key: new,
                    place: match place {
                        Some(p) => format!("{p:?}").to_lowercase(),
                        None => "in some entries only".into(),
                    },
                });
            }
            let next = match journal.step {
                Step::AddSecond => {
                    if place == Some(KeyPlace::Absent) {
                        let mut secret = [0u8; 32];
                        rand::rngs::OsRng.fill_bytes(&mut secret);
                        config = config::add_second(&config, &new, &secret)
                            .map_err(|source| self.config_error(source))?;
                        self.write_config(&config)?;
                    }
                    // No load here: the step exists so that every API server can read with a
                    // key before any writes with it, and this file has one reader, this node's
                    // API server (Kubernetes' rotation guide lets a single server skip it). The
                    // promotion's load brings both at once and saves a reload (a minute).
                    progress(&format!(
                        "[1/4] {new} is the second key (one API server reads this file: it is \
                         promoted in the same load)"
                    ));
                    Step::Promote
                }
                Step::Promote => {
                    if place == Some(KeyPlace::Reading) {
                        config = config::promote(&config, &new);
                        self.write_config(&config)?;
                    }
                    progress(&format!(
                        "[2/4] {new} is the first key: every write uses it"
                    ));
                    self.load(&client, progress).await?;
                    Step::Rewrite
                }
                Step::Rewrite => {
                    progress(&format!("[3/4] Re-writing every object with {new}"));
                    self.rewrite_and_verify(&client, &config, &new, progress)
                        .await?;
                    Step::Retire
                }
                Step::Retire => {
                    if place == Some(KeyPlace::Writing) {
                        config = config::retire(&config, &new);
                        self.write_config(&config)?;
                    }
                    progress(&format!(
                        "[4/4] {new} is the only key; the old keys are gone"
                    ));
                    self.load(&client, progress).await?;
                    journal::remove(&self.journal_path).map_err(|r| self.journal(r))?;
                    return Ok(new);
                }
            };
            journal.step = next;
            journal::write(&self.journal_path, &journal).map_err(|r| self.journal(r))?;
        }
    }

    /// Checks that the API server runs the file as it is and that etcd answers, then starts the
    /// journal. Nothing is changed when either is not so.
    async fn begin(
        &self,
        client: &kube::Client,
        config: &EncryptionConfig,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<Journal, SecretsError> {
        // An API server that does not answer fails here at once, before anything changes.
        api::loaded_hashes(client).await?;
        // Another API server would go on with the old file: once this one writes with the new
        // key, the others could not read what it wrote. (A rotation under way was begun with
        // one; its re-run goes on, even while the API server restarts.)
        let addresses = api::api_server_addresses(client).await?;
        if addresses.len() > 1 {
            return Err(SecretsError::SeveralApiServers { addresses });
        }
        self.wait_loaded(client, RELOAD_WAIT, progress).await?;
        let old = config.write_key();
        for resource in config.resources() {
            let (total, stale) = self.not_encrypted_with(config, &old, &resource).await?;
            progress(&format!(
                "{resource}: {total} in etcd, {} with the write key {old}",
                total - stale.len() as u64
            ));
        }
        let journal = Journal {
            new_key: config.next_key_name(),
            old_key: old,
            step: Step::AddSecond,
            started_at: crate::certs::unix(SystemTime::now()),
        };
        journal::write(&self.journal_path, &journal).map_err(|r| self.journal(r))?;
        Ok(journal)
    }

    async fn rewrite_and_verify(
        &self,
        client: &kube::Client,
        config: &EncryptionConfig,
        new: &str,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), SecretsError> {
        for resource in config.resources() {
            for attempt in 1..=2 {
                let started = Instant::now();
                let done = api::rewrite(client, &resource, progress).await?;
                progress(&format!(
                    "{resource}: {} re-written, {} changed meanwhile, in {:.1}s",
                    done.written,
                    done.skipped,
                    started.elapsed().as_secs_f64()
                ));
                let (total, stale) = self.not_encrypted_with(config, new, &resource).await?;
                if stale.is_empty() {
                    progress(&format!(
                        "{resource}: all {total} in etcd are encrypted with {new}"
                    ));
                    break;
                }
                if attempt == 2 {
                    return Err(SecretsError::Stragglers {
                        count: stale.len(),
                        resource,
                        key: new.to_string(),
                        example: stale[0].clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// How many keys of `resource` etcd holds, and those not encrypted with `key`.
    async fn not_encrypted_with(
        &self,
        config: &EncryptionConfig,
        key: &str,
        resource: &str,
    ) -> Result<(u64, Vec<String>), SecretsError> {
        let prefixes = config.prefixes(key);
        let mut stale = Vec::new();
        let prefix = format!("{}/{resource}/", self.etcd_prefix.trim_end_matches('/'));
        let total = crate::etcd::kv::scan(&self.etcd, prefix.as_bytes(), &mut |k, value| {
            if !prefixes.iter().any(|p| value.starts_with(p.as_bytes())) {
                stale.push(String::from_utf8_lossy(k).into_owned());
            }
        })
        .await?;
        Ok((total, stale))
    }

    /// Makes the API server run the file as it is now, and waits until it says so.
    async fn load(
        &self,
        client: &kube::Client,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), SecretsError> {
        let wait = match self.reload {
            Reload::Automatic => RELOAD_WAIT,
            Reload::Restart => {
                let affected = [(
                    self.apiserver_manifest.clone(),
                    "kube-apiserver".to_string(),
                )];
                let socket = self.agent_socket.clone();
                let lines = tokio::task::spawn_blocking(move || {
                    let mut lines = Vec::new();
                    crate::certs::rolling_restart_marked(
                        &socket,
                        &affected,
                        RESTART_WAIT,
                        LOADED_ANNOTATION,
                        &mut |l| lines.push(l.to_string()),
                    )
                    .map(|()| lines)
                })
                .await
                .map_err(|e| self.file_error(e.to_string()))??;
                lines.iter().for_each(|l| progress(l));
                RESTART_WAIT
            }
        };
        self.wait_loaded(client, wait, progress).await
    }

    async fn wait_loaded(
        &self,
        client: &kube::Client,
        wait: Duration,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<(), SecretsError> {
        let bytes =
            super::read_bounded(&self.config_path, MAX_CONFIG).map_err(|r| self.file_error(r))?;
        let want = format!("{:x}", Sha256::digest(&bytes));
        let started = Instant::now();
        let mut said = false;
        let loaded = loop {
            let seen = match api::loaded_hashes(client).await {
                Ok(hashes) if hashes.iter().any(|h| h == &format!("sha256:{want}")) => {
                    progress(&format!(
                        "The API server runs it (sha256:{}…) after {:.1}s",
                        &want[..12],
                        started.elapsed().as_secs_f64()
                    ));
                    return Ok(());
                }
                // Without automatic reload an API server may not export the metric; one that
                // (re)started after the file was written has read it.
                Ok(hashes) if hashes.is_empty() && self.reload == Reload::Restart => {
                    progress("The API server does not report its configuration; it read the file when it started");
                    return Ok(());
                }
                Ok(hashes) if hashes.is_empty() => "no encryption configuration".to_string(),
                Ok(hashes) => hashes.join(", "),
                // Down while it restarts: keep asking until the deadline.
                Err(e) => e.to_string(),
            };
            if started.elapsed() >= wait {
                break seen;
            }
            if !said && self.reload == Reload::Automatic {
                progress("Waiting for the API server's automatic reload (it re-reads the file every minute) …");
                said = true;
            }
            tokio::time::sleep(POLL).await;
        };
        Err(SecretsError::NotLoaded {
            path: self.config_path.clone(),
            want,
            waited: wait,
            loaded,
        })
    }

    fn read_config(&self) -> Result<EncryptionConfig, SecretsError> {
        let bytes =
            super::read_bounded(&self.config_path, MAX_CONFIG).map_err(|r| self.file_error(r))?;
        let text = String::from_utf8(bytes).map_err(|_| self.file_error("not UTF-8".into()))?;
        EncryptionConfig::parse(&text).map_err(|source| self.config_error(source))
    }

    fn write_config(&self, config: &EncryptionConfig) -> Result<(), SecretsError> {
        let file = crate::host::RenderedFile::new(&self.config_path, 0o600, config.to_yaml());
        crate::host::write_all(&[file]).map_err(|e| self.file_error(e.to_string()))
    }

    fn file_error(&self, reason: String) -> SecretsError {
        SecretsError::File {
            path: self.config_path.clone(),
            reason,
        }
    }

    fn config_error(&self, source: ConfigError) -> SecretsError {
        SecretsError::Config {
            path: self.config_path.clone(),
            source,
        }
    }

    fn journal(&self, reason: String) -> SecretsError {
        SecretsError::Journal {
            path: self.journal_path.clone(),
            reason,
        }
    }
}
