//! Certificates over time: `boot certs check-expiration` and `boot certs renew` (kubeadm's
//! `certs` commands, reference §8), and which static pods use a renewed file so that only those
//! are restarted, one at a time.
//!
//! The inventory is kubeadm's: the non-CA certificates of `pki/profiles.yaml` and the four
//! kubeconfigs with embedded client certificates; CAs, `sa.*` and `kubelet.conf` are not renewed.
//! Renewal re-issues each from its local CA with the attributes of the existing certificate
//! ([`crate::pki::renew`]) and replaces it crash-safely ([`pair`]).
//!
//! Touches: the certificate directory, `/etc/kubernetes/*.conf`, and (for restarts) the manifests
//! directory; all already `--root`-prefixed by the caller.

pub mod auto;
pub mod expiry;
pub mod hot_reload;
pub mod pair;
mod restart;

pub use restart::{
    affected_pods, mark_renewed, read_manifests, rolling_restart, rolling_restart_marked,
    RestartError, RENEWED_ANNOTATION,
};

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use crate::host::{self, RenderedFile};
use crate::pki::{self, CertFacts, KeyAlgorithm, PkiError, Profiles, Signer};
use crate::render::KUBECONFIGS;
use expiry::CertRow;
use pair::PairPaths;

/// Longest certificate, key or kubeconfig file read: real ones are a few KiB.
const MAX_FILE: u64 = 1024 * 1024;

/// Where certificates and kubeconfigs live, and what the cluster's configuration says about them.
#[derive(Debug, Clone)]
pub struct CertsLayout {
    pub cert_dir: PathBuf,
    pub kubernetes_dir: PathBuf,
    /// Stacked etcd: the etcd certificates exist.
    pub local_etcd: bool,
}

/// One renewable certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renewable {
    /// `<cert dir>/<file>.{crt,key}`, signed by the CA whose file base is `ca_file`.
    Leaf {
        name: String,
        file: String,
        ca: String,
        ca_file: String,
    },
    /// A kubeconfig in the kubernetes directory whose client certificate the cluster CA signs.
    Kubeconfig { name: String },
}

impl Renewable {
    pub fn name(&self) -> &str {
        match self {
            Renewable::Leaf { name, .. } | Renewable::Kubeconfig { name } => name,
        }
    }

    fn ca_file(&self) -> &str {
        match self {
            Renewable::Leaf { ca_file, .. } => ca_file,
            Renewable::Kubeconfig { .. } => "ca",
        }
    }

    fn ca_name(&self) -> &str {
        match self {
            Renewable::Leaf { ca, .. } => ca,
            Renewable::Kubeconfig { .. } => "ca",
        }
    }

    /// The file that changes on renewal (the certificate, or the kubeconfig).
    pub fn changed_file(&self, layout: &CertsLayout) -> PathBuf {
        match self {
            Renewable::Leaf { file, .. } => layout.cert_dir.join(format!("{file}.crt")),
            Renewable::Kubeconfig { name } => layout.kubernetes_dir.join(name),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error(
        "certificate {name} cannot be renewed: its CA key {ca_key} is not on this machine \
         (external CA mode); renew it with the external CA"
    )]
    ExternalCa { name: String, ca_key: PathBuf },
    #[error("unknown certificate {name:?}; known: {known}")]
    Unknown { name: String, known: String },
}

/// kubeadm's renewable certificates, sorted by name as `check-expiration` lists them.
pub fn inventory(local_etcd: bool) -> Result<Vec<Renewable>, PkiError> {
    let profiles = Profiles::embedded()?;
    let mut all: Vec<Renewable> = profiles
        .selected(local_etcd)
        .filter(|p| !p.is_ca())
        .filter_map(|p| match &p.signer {
            Signer::Ca(ca) => profiles.find(ca).map(|ca| Renewable::Leaf {
                name: p.name.clone(),
                file: p.file.clone(),
                ca: ca.name.clone(),
                ca_file: ca.file.clone(),
            }),
            Signer::SelfSigned => None,
        })
        .collect();
    // The kubelet rotates its own kubelet.conf; kubeadm never renews it.
    all.extend(
        KUBECONFIGS
            .iter()
            .filter(|k| k.file != "kubelet.conf")
            .map(|k| Renewable::Kubeconfig {
                name: k.file.to_string(),
            }),
    );
    all.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(all)
}

/// What `check-expiration` found.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpirationReport {
    pub certificates: Vec<CertRow>,
    pub certificate_authorities: Vec<CertRow>,
    /// kubeadm prints these as `!MISSING! <name>`.
    pub missing: Vec<String>,
}

/// Reads every certificate of the inventory and every CA (finishing interrupted renewals first).
pub fn check_expiration(layout: &CertsLayout) -> Result<ExpirationReport, CertsError> {
    let mut report = ExpirationReport::default();
    for item in inventory(layout.local_etcd)? {
        complete_pending(layout, &item)?;
        let file = item.changed_file(layout);
        if !file.exists() {
            report.missing.push(item.name().to_string());
            continue;
        }
        let facts = read_cert(layout, &item)?;
        report.certificates.push(CertRow {
            name: item.name().to_string(),
            not_before: facts.not_before,
            not_after: facts.not_after,
            authority: item.ca_name().to_string(),
            externally_managed: !ca_key_path(layout, &item).exists(),
        });
    }
    let profiles = Profiles::embedded()?;
    for ca in profiles.selected(layout.local_etcd).filter(|p| p.is_ca()) {
        let path = layout.cert_dir.join(ca.crt_file());
        if !path.exists() {
            report.missing.push(ca.name.clone());
            continue;
        }
        let facts = CertFacts::from_pem(&read_bounded(&path)?, &path)?;
        report.certificate_authorities.push(CertRow {
            name: ca.name.clone(),
            not_before: facts.not_before,
            not_after: facts.not_after,
            authority: String::new(),
            externally_managed: !layout.cert_dir.join(ca.key_file()).exists(),
        });
    }
    Ok(report)
}

/// The inventory entries `names` selects (`all` selects every one).
pub fn select(local_etcd: bool, names: &[String]) -> Result<Vec<Renewable>, CertsError> {
    let all = inventory(local_etcd)?;
    if names.iter().any(|n| n == "all") {
        return Ok(all);
    }
    names
        .iter()
        .map(|name| {
            all.iter()
                .find(|r| r.name() == name)
                .cloned()
                .ok_or_else(|| CertsError::Unknown {
                    name: name.clone(),
                    known: all.iter().map(|r| r.name()).collect::<Vec<_>>().join(", "),
                })
        })
        .collect()
}

/// How renewed certificates are issued.
#[derive(Debug, Clone, Copy)]
pub struct RenewSettings {
    pub algorithm: KeyAlgorithm,
    pub validity: Duration,
    pub now: SystemTime,
}

/// Renews one certificate; returns its new NotAfter (Unix seconds).
pub fn renew(
    layout: &CertsLayout,
    item: &Renewable,
    settings: RenewSettings,
) -> Result<i64, CertsError> {
    complete_pending(layout, item)?;
    let ca_key_path = ca_key_path(layout, item);
    if !ca_key_path.exists() {
        return Err(CertsError::ExternalCa {
            name: item.name().to_string(),
            ca_key: ca_key_path,
        });
    }
    let ca_path = layout.cert_dir.join(format!("{}.crt", item.ca_file()));
    let ca_cert_pem = read_bounded(&ca_path)?;
    let ca_key_pem =
        String::from_utf8(read_bounded(&ca_key_path)?).map_err(|_| CertsError::File {
            path: ca_key_path.clone(),
            reason: "not UTF-8 PEM".into(),
        })?;
    let cert_path = item.changed_file(layout);
    let (cert_pem, kubeconfig) = match item {
        Renewable::Leaf { .. } => (read_bounded(&cert_path)?, None),
        Renewable::Kubeconfig { .. } => {
            let doc = read_kubeconfig(&cert_path)?;
            (client_cert_of(&doc, &cert_path)?, Some(doc))
        }
    };
    let fresh = pki::renew(&pki::Renewal {
        name: item.name(),
        cert_path: &cert_path,
        cert_pem: &cert_pem,
        ca_path: &ca_path,
        ca_cert_pem: &ca_cert_pem,
        ca_key_pem: &ca_key_pem,
        algorithm: settings.algorithm,
        now: settings.now,
        validity: settings.validity,
    })?;
    let written = |e: std::io::Error| CertsError::File {
        path: cert_path.clone(),
        reason: format!("cannot write the renewed certificate: {e}"),
    };
    match (item, kubeconfig) {
        (Renewable::Leaf { file, .. }, _) => {
            let paths = PairPaths::new(&layout.cert_dir, file);
            pair::replace(
                &paths,
                fresh.cert_pem.as_bytes(),
                fresh.key_pem.as_bytes(),
                None,
            )
            .map_err(written)?;
        }
        (Renewable::Kubeconfig { .. }, Some(mut doc)) => {
            set_client_credentials(&mut doc, &fresh.cert_pem, &fresh.key_pem, &cert_path)?;
            let bytes = serde_yaml::to_string(&doc)
                .map_err(|e| CertsError::File {
                    path: cert_path.clone(),
                    reason: e.to_string(),
                })?
                .into_bytes();
            host::write_all(&[RenderedFile::new(cert_path.clone(), 0o600, bytes)]).map_err(
                |e| CertsError::File {
                    path: cert_path.clone(),
                    reason: e.to_string(),
                },
            )?;
        }
        (Renewable::Kubeconfig { .. }, None) => unreachable!("kubeconfigs are read above"),
    }
    let facts = CertFacts::from_pem(fresh.cert_pem.as_bytes(), &cert_path)?;
    Ok(facts.not_after)
}

/// Unix seconds of `time`.
pub fn unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn complete_pending(layout: &CertsLayout, item: &Renewable) -> Result<(), CertsError> {
    if let Renewable::Leaf { file, .. } = item {
        let paths = PairPaths::new(&layout.cert_dir, file);
        pair::complete_pending(&paths).map_err(|e| CertsError::File {
            path: paths.cert.clone(),
            reason: format!("cannot finish an interrupted renewal: {e}"),
        })?;
    }
    Ok(())
}

fn ca_key_path(layout: &CertsLayout, item: &Renewable) -> PathBuf {
    layout.cert_dir.join(format!("{}.key", item.ca_file()))
}

fn read_cert(layout: &CertsLayout, item: &Renewable) -> Result<CertFacts, CertsError> {
    let path = item.changed_file(layout);
    let pem = match item {
        Renewable::Leaf { .. } => read_bounded(&path)?,
        Renewable::Kubeconfig { .. } => client_cert_of(&read_kubeconfig(&path)?, &path)?,
    };
    Ok(CertFacts::from_pem(&pem, &path)?)
}

/// Reads a regular file (no symlink followed) of at most [`MAX_FILE`] bytes.
fn read_bounded(path: &Path) -> Result<Vec<u8>, CertsError> {
    crate::host::read_bounded(path, MAX_FILE, crate::host::Links::Refuse).map_err(|e| {
        CertsError::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }
    })
}

fn read_kubeconfig(path: &Path) -> Result<serde_yaml::Value, CertsError> {
    serde_yaml::from_slice(&read_bounded(path)?).map_err(|e| CertsError::File {
        path: path.to_path_buf(),
        reason: format!("not a kubeconfig: {e}"),
    })
}

/// The first user's `client-certificate-data`, decoded.
fn client_cert_of(doc: &serde_yaml::Value, path: &Path) -> Result<Vec<u8>, CertsError> {
    let data = first_user(doc)
        .and_then(|user| user.get("client-certificate-data"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| CertsError::File {
            path: path.to_path_buf(),
            reason: "users[0].user.client-certificate-data is missing (not an embedded client \
                     certificate)"
                .into(),
        })?;
    BASE64.decode(data.trim()).map_err(|e| CertsError::File {
        path: path.to_path_buf(),
        reason: format!("users[0].user.client-certificate-data: {e}"),
    })
}

fn first_user(doc: &serde_yaml::Value) -> Option<&serde_yaml::Value> {
    doc.get("users")?.get(0)?.get("user")
}

fn set_client_credentials(
    doc: &mut serde_yaml::Value,
    cert_pem: &str,
    key_pem: &str,
    path: &Path,
) -> Result<(), CertsError> {
    let user = doc
        .get_mut("users")
        .and_then(|u| u.get_mut(0))
        .and_then(|u| u.get_mut("user"))
        .and_then(|u| u.as_mapping_mut())
        .ok_or_else(|| CertsError::File {
            path: path.to_path_buf(),
            reason: "users[0].user is missing".into(),
        })?;
    user.insert(
        "client-certificate-data".into(),
        BASE64.encode(cert_pem).into(),
    );
    user.insert("client-key-data".into(), BASE64.encode(key_pem).into());
    Ok(())
}
