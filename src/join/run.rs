//! Runs `boot join --control-plane` as kubeadm's join phases, with the agent in place of the
//! kubelet: discovery and the cluster's configuration, preflight, the shared certificates, this
//! node's certificates and kubeconfigs (all in memory until here: bad join data changes nothing),
//! then the files and the ledger, etcd joined as a learner (journaled), the manifests, the agent,
//! the learner promoted once caught up, the control plane healthy, the node marked.
//!
//! Anything that fails after the learner was added removes the member again ([`super::
//! etcd_journal::roll_back`]), as does an interrupt (the CLI drops this future and rolls back).
//! Writes what init writes (recorded in the same ledger, so `boot reset` undoes a join) and the
//! journal `/var/lib/boot/join-etcd.json`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::ConfigMap;

use super::etcd_join::{self, EtcdJoinError};
use super::etcd_journal::{JoinJournal, JournalError};
use super::upload_certs::{self, UploadCertsError, SHARED};
use super::{CertificateKey, JoinCredentials, JoinDiscovery, JoinDiscoveryError};
use crate::config::{bracket_host, Arg, ClusterConfiguration, Config, ConfigError, Timeouts};
use crate::controlplane::wait::{self, WaitFailure};
use crate::controlplane::{agent_launch, effective_config, NodeLedger, RecordError};
use crate::etcd::{promote, EtcdClient, EtcdError, Identity};
use crate::host::layout::{never_removed, EFFECTIVE_CONFIG};
use crate::host::{write_all, HostRoot, RenderedFile, WriteError};
use crate::kubeapi::{kube_system, Caller};
use crate::pki::ExistingPki;
use crate::preflight::{self, PreflightReport};
use crate::render::{self, OutputLayout, Parts, RenderError, Templates, COMPONENTS};

/// kubeadm's `KubeadmConfigConfigMap` and its `ClusterConfigurationConfigMapKey`.
const KUBEADM_CONFIG: &str = "kubeadm-config";
const CLUSTER_CONFIGURATION_KEY: &str = "ClusterConfiguration";

/// Builds this node's configuration from the cluster's ClusterConfiguration (the CLI's part:
/// the node's own file, its flags and the host's facts).
pub type ConfigBuilder<'a> = dyn Fn(ClusterConfiguration) -> Result<Config, ConfigError> + 'a;

pub struct JoinRequest<'a> {
    pub root: &'a HostRoot,
    pub discovery: &'a JoinDiscovery,
    pub certificate_key: &'a CertificateKey,
    pub config: &'a ConfigBuilder<'a>,
    pub timeouts: Timeouts,
    pub ignore_preflight: Vec<String>,
    pub agent_mode: crate::config::AgentMode,
    pub exe: PathBuf,
    pub live: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Discovery(#[from] JoinDiscoveryError),
    #[error("cannot read the cluster's configuration (ConfigMap kube-system/kubeadm-config) from {server}: {detail}")]
    ClusterConfig { server: String, detail: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("preflight checks failed")]
    Preflight(PreflightReport),
    #[error(transparent)]
    Certs(#[from] UploadCertsError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error("this node's certificates: {0}")]
    Identity(String),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Etcd(#[from] EtcdJoinError),
    #[error("cannot start the agent: {0}")]
    Agent(std::io::Error),
    #[error("the new etcd member did not catch up: {0}")]
    Promote(EtcdError),
    #[error("the control plane did not become healthy")]
    Wait(WaitFailure),
    #[error("mark-control-plane: {0}")]
    Mark(String),
    #[error("the cluster shares no encryption configuration for {0} (Secret kube-system/kubeadm-certs has no {key})", key = upload_certs::ENCRYPTION_CONFIG_KEY)]
    NoEncryptionConfig(PathBuf),
}

impl JoinError {
    /// Whether this node was left as it was (the error came before anything was written).
    pub fn changed_nothing(&self) -> bool {
        matches!(
            self,
            JoinError::Discovery(_)
                | JoinError::ClusterConfig { .. }
                | JoinError::Config(_)
                | JoinError::Preflight(_)
                | JoinError::Certs(_)
                | JoinError::Render(_)
                | JoinError::Identity(_)
                | JoinError::NoEncryptionConfig(_)
        )
    }
}

/// What a successful join reports.
#[derive(Debug)]
pub struct Joined {
    pub took: Duration,
    pub node_name: String,
    pub admin_conf: PathBuf,
}

/// Runs the join. On an error after the learner was added, the caller rolls back with the
/// journal ([`super::etcd_journal::roll_back`]); this function leaves that to it so that an
/// interrupt (the future dropped) is handled the same way.
pub async fn run(request: &JoinRequest<'_>, out: &mut dyn Write) -> Result<Joined, JoinError> {
    let start = Instant::now();
    let JoinRequest { root, timeouts, .. } = request;
    macro_rules! say { ($($t:tt)*) => {{ let _ = writeln!(out, $($t)*); }} }

    say!("[preflight] Running pre-flight checks");
    let (info, credentials) = request
        .discovery
        .discover(timeouts.discovery.0, out)
        .await?;
    say!("[preflight] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...");
    let cluster =
        cluster_configuration(&info, &credentials, timeouts.kubernetes_api_call.0).await?;
    let mut cfg = (request.config)(cluster)?;
    say!(
        "[preflight] Running pre-flight checks before initializing the new control plane instance"
    );
    let report = preflight::run_for_join(&cfg, root, &request.ignore_preflight);
    if !report.errors.is_empty() {
        return Err(JoinError::Preflight(report));
    }
    if !report.warnings.is_empty() {
        say!("{report}");
    }
    say!("[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace");
    let shared = upload_certs::download(
        &info,
        &credentials,
        request.certificate_key,
        timeouts.kubernetes_api_call.0,
    )
    .await?;

    // Everything this node needs, rendered in memory against the shared CAs.
    let layout = OutputLayout::host(&cfg, root);
    let templates = Templates::with_overrides(cfg.boot.templates_dir.as_deref())?;
    let mut existing = ExistingPki::empty();
    let mut shared_files = Vec::new();
    for file in SHARED.iter() {
        if let Some(bytes) = shared.get(file.secret_key).filter(|b| !b.is_empty()) {
            existing = existing.with_file(file.pki_path, bytes.to_vec());
            shared_files.push(RenderedFile::new(
                layout.cert_dir.join(file.pki_path),
                file.mode,
                bytes.to_vec(),
            ));
        }
    }
    // With external etcd, the API server's client files for it, at the configured paths.
    if let Some(external) = &cfg.cluster.etcd.external {
        let wanted = upload_certs::EXTERNAL_ETCD.iter().zip([
            (&external.ca_file, 0o644),
            (&external.cert_file, 0o644),
            (&external.key_file, 0o600),
        ]);
        // Empty paths: an etcd without TLS client authentication.
        for (key, (path, mode)) in wanted.filter(|(_, (path, _))| !path.is_empty()) {
            let plain = Path::new(path).is_absolute()
                && !Path::new(path)
                    .components()
                    .any(|c| c == std::path::Component::ParentDir);
            if !plain {
                return Err(JoinError::Identity(format!(
                    "etcd.external: {path:?} is not an absolute path without \"..\""
                )));
            }
            let bytes = shared.get(key).filter(|b| !b.is_empty()).ok_or_else(|| {
                UploadCertsError::Incomplete {
                    key: key.to_string(),
                }
            })?;
            shared_files.push(RenderedFile::new(root.path(path), mode, bytes.to_vec()));
        }
    }
    let parts = Parts {
        pki: true,
        kubeconfigs: true,
        components: &COMPONENTS[1..],
    };
    let mut bundle = render::bundle_with(
        &cfg,
        root,
        &templates,
        &layout,
        parts,
        SystemTime::now(),
        &existing,
    )?;
    // The cluster's encryption key, not a new one: every API server must decrypt what the others
    // wrote to the shared etcd.
    if cfg.boot.encryption_at_rest.enabled {
        let path = layout.kubernetes_dir.join(render::ENCRYPTION_CONFIG);
        let shared_config = shared
            .get(upload_certs::ENCRYPTION_CONFIG_KEY)
            .filter(|b| !b.is_empty())
            .ok_or_else(|| JoinError::NoEncryptionConfig(path.clone()))?;
        bundle.files.retain(|f| f.path != path);
        bundle
            .files
            .push(RenderedFile::new(path, 0o600, shared_config.to_vec()));
    }
    // kubeadm writes super-admin.conf on the first node only.
    bundle
        .files
        .retain(|f| !f.path.ends_with("super-admin.conf"));
    let stacked = cfg.local_etcd().is_some();

    // The cluster's etcd, reached with this node's own (not yet written) etcd client identity.
    let etcd = if stacked {
        let client = etcd_client(&cfg, &layout, &bundle.files, &shared_files, &info.server).await?;
        let peer_url = format!(
            "https://{}:2380",
            bracket_host(&cfg.advertise_address.to_string())
        );
        let mut lines = Vec::new();
        let members =
            etcd_join::check_membership(&client, &cfg.node_name, &peer_url, &mut |l| lines.push(l))
                .await?;
        for line in lines {
            say!("{line}");
        }
        let known: Vec<String> = client.endpoints().iter().map(|e| e.to_string()).collect();
        Some((
            client,
            peer_url,
            etcd_join::all_client_urls(&members, &known),
        ))
    } else {
        None
    };

    // From here on the host changes: the ledger first, then the files.
    let config_file = RenderedFile::new(root.path(EFFECTIVE_CONFIG), 0o600, Vec::new());
    let kubelet_file = crate::node::KubeletConfiguration::for_init(&cfg, root).rendered(root);
    let etcd_manifest = layout.manifest_dir.join("etcd.yaml");
    let mode = agent_launch::resolve_mode(request.agent_mode, root);
    let mut noted: Vec<RenderedFile> = bundle.files.clone();
    // An external etcd client file directly in a directory reset never touches (`/etc`) stays
    // out of the ledger: listing it would make reset refuse the whole ledger.
    let external_dirs = external_etcd_dirs(&cfg, root);
    noted.extend(
        shared_files
            .iter()
            .filter(|f| {
                let dir = f.path.parent().unwrap_or(Path::new("/"));
                !external_dirs.iter().any(|d| d == dir) || !never_removed(root, dir)
            })
            .cloned(),
    );
    if stacked {
        noted.push(RenderedFile::new(etcd_manifest.clone(), 0o600, Vec::new()));
    }
    let mut ledger = NodeLedger::load(root)?;
    let manifests: Vec<RenderedFile> = noted
        .iter()
        .filter(|f| f.path.starts_with(&layout.manifest_dir))
        .cloned()
        .collect();
    ledger.note_node(&cfg, &layout, &manifests);
    ledger.note_files(&noted);
    ledger.note_files(std::slice::from_ref(&config_file));
    ledger.note_kubelet_files(&kubelet_file);
    ledger.note_agent(agent_launch::launch_record(mode, root));
    // The external etcd client files may lie outside the PKI directory: reset removes them
    // (only them: the ledger lists files) as it does the rest of what the join wrote.
    for dir in external_dirs.iter().filter(|d| !never_removed(root, d)) {
        ledger.note_prefix(dir);
    }
    ledger.save()?;
    say!(
        "[certs] Using certificateDir folder {:?}",
        layout.cert_dir.display().to_string()
    );
    for line in render::progress_lines(&bundle, &layout) {
        if !line.starts_with("[control-plane]") {
            say!("{line}");
        }
    }
    let (manifests, pki_and_kubeconfigs): (Vec<RenderedFile>, Vec<RenderedFile>) = bundle
        .files
        .into_iter()
        .partition(|f| f.path.starts_with(&layout.manifest_dir));
    let mut first = shared_files;
    first.extend(pki_and_kubeconfigs);
    write_all(&first)?;

    let mut added = None;
    if let Some((client, peer_url, endpoints)) = &etcd {
        say!(
            "[etcd] Adding this node as a learner to the etcd cluster through {}",
            endpoints.join(",")
        );
        let files = crate::etcd::ClientFiles {
            ca: layout.cert_dir.join("etcd/ca.crt"),
            cert: layout.cert_dir.join("etcd/healthcheck-client.crt"),
            key: layout.cert_dir.join("etcd/healthcheck-client.key"),
        };
        let mut journal = JoinJournal {
            name: cfg.node_name.clone(),
            peer_url: peer_url.clone(),
            endpoints: endpoints.clone(),
            ca: files.ca,
            cert: files.cert,
            key: files.key,
            member: None,
            promoted: false,
        };
        let (member, initial_cluster) = etcd_join::add_learner(root, client, &mut journal).await?;
        say!(
            "[etcd] Added learner {} with peer URL {peer_url}",
            member.id
        );
        added = Some((journal, member.id));
        set_etcd_args(&mut cfg, &initial_cluster);
        let etcd_only = Parts {
            pki: false,
            kubeconfigs: false,
            components: &COMPONENTS[..1],
        };
        let rendered = render::bundle(
            &cfg,
            root,
            &templates,
            &layout,
            etcd_only,
            SystemTime::now(),
        )?;
        say!(
            "[etcd] Creating static Pod manifest for local etcd in {:?}",
            layout.manifest_dir.display().to_string()
        );
        write_all(&rendered.files)?;
    }
    for file in &manifests {
        if let Some(name) = file.path.file_stem() {
            say!(
                "[control-plane] Creating static Pod manifest for {:?}",
                name.to_string_lossy()
            );
        }
    }
    let config_file = RenderedFile::new(root.path(EFFECTIVE_CONFIG), 0o600, effective_config(&cfg));
    let mut last = manifests;
    last.push(config_file.clone());
    last.push(kubelet_file.clone());
    say!(
        "[kubelet-start] Writing kubelet configuration to file {:?}",
        kubelet_file.path.display().to_string()
    );
    write_all(&last)?;

    let agent_args = agent_launch::agent_args(root, &config_file.path);
    say!("[agent] Starting the static pod agent");
    match mode {
        crate::config::AgentMode::Systemd => {
            agent_launch::start_systemd(&request.exe, root, &agent_args).map(|_| ())
        }
        _ => agent_launch::start_detached(&request.exe, root, &agent_args).map(|_| ()),
    }
    .map_err(JoinError::Agent)?;

    if let (Some((client, _, _)), Some((mut journal, id))) = (&etcd, added) {
        let timeout = timeouts.etcd_api_call.0;
        say!(
            "[etcd] Waiting for the new etcd member to catch up, then promoting it. This can take up to {}",
            crate::config::GoDuration(timeout)
        );
        let local_urls = [format!(
            "https://{}:2379",
            bracket_host(&cfg.advertise_address.to_string())
        )];
        let learner = client.with_endpoints(&local_urls).ok();
        let mut progress = |line: String| {
            let _ = writeln!(out, "[etcd] {line}");
        };
        let took =
            promote::promote_when_ready(client, id, learner.as_ref(), timeout, &mut progress)
                .await
                .map_err(JoinError::Promote)?;
        journal.promoted = true;
        journal.save(root)?;
        say!(
            "[etcd] Member {id} promoted to a voting member after {:.1}s",
            took.as_secs_f64()
        );
    }

    let timeout = timeouts.control_plane_component_health_check.0;
    wait::control_plane_check(&cfg, root, &layout, timeout, request.live, out)
        .await
        .map_err(JoinError::Wait)?;
    let lines = crate::node::mark::mark_control_plane(
        &layout.kubernetes_dir,
        &cfg.node_name,
        timeouts.kubernetes_api_call.0,
    )
    .await
    .map_err(|e| JoinError::Mark(format!("{e} (hint: {})", e.hint())))?;
    for line in lines {
        say!("{line}");
    }
    Ok(Joined {
        took: start.elapsed(),
        node_name: cfg.node_name.clone(),
        admin_conf: layout.kubernetes_dir.join("admin.conf"),
    })
}

/// The directories (beneath the root) of the external etcd client files a join writes.
fn external_etcd_dirs(cfg: &Config, root: &HostRoot) -> Vec<PathBuf> {
    let Some(external) = &cfg.cluster.etcd.external else {
        return Vec::new();
    };
    [&external.ca_file, &external.cert_file, &external.key_file]
        .into_iter()
        .filter(|p| !p.is_empty())
        .filter_map(|p| root.path(p).parent().map(Path::to_path_buf))
        .collect()
}

/// The ClusterConfiguration the first node uploaded, read with the join's credentials (kubeadm's
/// `kubeadm:nodes-kubeadm-config` Role allows bootstrap tokens).
async fn cluster_configuration(
    info: &super::ClusterInfo,
    credentials: &JoinCredentials,
    timeout: Duration,
) -> Result<ClusterConfiguration, JoinError> {
    let fail = |detail: String| JoinError::ClusterConfig {
        server: info.server.clone(),
        detail,
    };
    let caller = credentials.caller(info, timeout).map_err(&fail)?;
    let map = caller
        .call(|client| async move { kube_system::<ConfigMap>(client).get(KUBEADM_CONFIG).await })
        .await
        .map_err(|failure| fail(failure.detail(timeout)))?;
    let text = map
        .data
        .and_then(|mut d| d.remove(CLUSTER_CONFIGURATION_KEY))
        .ok_or_else(|| fail(format!("it has no {CLUSTER_CONFIGURATION_KEY} key")))?;
    let docs = crate::config::parse("ConfigMap kube-system/kubeadm-config", &text)?;
    docs.cluster
        .ok_or_else(|| fail("its ClusterConfiguration is empty".into()))
}

/// A client for the cluster's etcd with this node's rendered etcd client identity, at the client
/// URLs the API lists (through the rendered admin.conf).
async fn etcd_client(
    cfg: &Config,
    layout: &OutputLayout,
    files: &[RenderedFile],
    shared: &[RenderedFile],
    server: &str,
) -> Result<EtcdClient, JoinError> {
    let find = |list: &[RenderedFile], path: &Path| {
        list.iter()
            .find(|f| f.path == path)
            .map(|f| f.bytes.clone())
            .ok_or_else(|| JoinError::Identity(format!("{} was not rendered", path.display())))
    };
    let ca_path = layout.cert_dir.join("etcd/ca.crt");
    let cert_path = layout.cert_dir.join("etcd/healthcheck-client.crt");
    let key_path = layout.cert_dir.join("etcd/healthcheck-client.key");
    let (ca, cert, key) = (
        find(shared, &ca_path)?,
        find(files, &cert_path)?,
        find(files, &key_path)?,
    );
    let admin = find(files, &layout.kubernetes_dir.join("admin.conf"))?;
    let timeout = cfg.init.timeouts.kubernetes_api_call.0;
    let host = api_host(server);
    let admin_path = layout.kubernetes_dir.join("admin.conf");
    let urls = match Caller::from_bytes(&admin_path, &admin, timeout).await {
        Ok(caller) => etcd_join::client_urls(caller.client, &host, timeout).await,
        Err(_) => etcd_join::client_urls_fallback(&host),
    };
    let identity = Identity {
        ca: (&ca_path, &ca),
        cert: (&cert_path, &cert),
        key: (&key_path, &key),
    };
    EtcdClient::with_identity(&urls, &identity, Duration::from_secs(10))
        .map_err(|e| JoinError::Etcd(EtcdJoinError::Etcd(e)))
}

/// The host of `https://host:port`.
fn api_host(server: &str) -> String {
    let rest = server.strip_prefix("https://").unwrap_or(server);
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default().to_string(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(h, _)| h)
            .to_string(),
    }
}

/// `--initial-cluster` and `--initial-cluster-state=existing` replace the defaults (and any
/// extraArgs of those names from the first node's configuration).
fn set_etcd_args(cfg: &mut Config, initial_cluster: &str) {
    let Some(local) = cfg.cluster.etcd.local.as_mut() else {
        return;
    };
    let args = etcd_join::joining_args(initial_cluster);
    local
        .extra_args
        .retain(|a| !args.contains_key(a.name.as_str()));
    for (name, value) in args {
        local.extra_args.push(Arg {
            name: name.to_string(),
            value,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_host_takes_the_host_of_the_discovered_server() {
        assert_eq!(api_host("https://10.231.0.1:6443"), "10.231.0.1");
        assert_eq!(api_host("https://[fd00::1]:6443/"), "fd00::1");
        assert_eq!(api_host("https://cp.example:6443"), "cp.example");
    }
}
