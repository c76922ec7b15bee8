//! The `kube-system/kubeadm-certs` Secret: the cluster's shared CA certificates and keys and the
//! service-account key pair, each value encrypted with the certificate key ([`super::cipher`]),
//! under kubeadm's key names (`etcd/ca.crt` becomes `etcd-ca.crt`). [`seal`] builds the values
//! on the init side (read from the PKI directory); [`download`] reads and decrypts them on a
//! joining node with its credentials, and [`SharedCertificates::write_into`] writes them to
//! its PKI directory. Only the names in [`SHARED`] become files: a Secret's key never becomes a
//! path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;

use super::cipher::{self, DecryptError};
use super::cluster_info::ClusterInfo;
use super::credentials::JoinCredentials;
use super::token::CertificateKey;
use crate::host::{write_all, RenderedFile, WriteError};
use crate::kubeapi::{describe, kube_system, Failure};

/// kubeadm's `KubeadmCertsSecret`.
pub const KUBEADM_CERTS: &str = "kubeadm-certs";
/// kubeadm's `KubeadmCertsClusterRoleName` (a Role and a RoleBinding in kube-system).
pub const KUBEADM_CERTS_ROLE: &str = "kubeadm:kubeadm-certs";
/// A shared file is a few kilobytes; anything larger is not one.
pub const MAX_FILE: usize = 1024 * 1024;

/// A shared file: its key in the Secret, its path under the PKI directory, its mode (kubeadm's:
/// keys and `sa.pub` 0600, certificates 0644).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedFile {
    pub secret_key: &'static str,
    pub pki_path: &'static str,
    pub mode: u32,
}

const fn shared(secret_key: &'static str, pki_path: &'static str, mode: u32) -> SharedFile {
    SharedFile {
        secret_key,
        pki_path,
        mode,
    }
}

/// kubeadm's `certsToTransfer` with stacked etcd, in its order.
pub const SHARED: [SharedFile; 8] = [
    shared("ca.crt", "ca.crt", 0o644),
    shared("ca.key", "ca.key", 0o600),
    shared("front-proxy-ca.crt", "front-proxy-ca.crt", 0o644),
    shared("front-proxy-ca.key", "front-proxy-ca.key", 0o600),
    shared("sa.pub", "sa.pub", 0o600),
    shared("sa.key", "sa.key", 0o600),
    shared("etcd-ca.crt", "etcd/ca.crt", 0o644),
    shared("etcd-ca.key", "etcd/ca.key", 0o600),
];
/// boot's addition to the Secret: the cluster's `EncryptionConfiguration` when encryption at rest
/// is on. Every API server must decrypt what the others wrote, so a joining node takes this file
/// instead of generating its own key. kubeadm's join decrypts every value and writes only the
/// files it knows, so the extra key is harmless to it.
pub const ENCRYPTION_CONFIG_KEY: &str = "boot-encryption-config.yaml";
/// With external etcd the etcd CA is not shared (the cluster has none) but the API server's
/// client files for the external etcd are: kubeadm's keys for `etcd.external.{caFile,certFile,
/// keyFile}`, written back to those configured paths on the joining node.
pub const EXTERNAL_ETCD: [&str; 3] = [
    "external-etcd-ca.crt",
    "external-etcd.crt",
    "external-etcd.key",
];

/// The files of the shared set that apply: the six cluster files, plus the etcd CA with stacked
/// etcd.
pub fn shared_files(external_etcd: bool) -> &'static [SharedFile] {
    if external_etcd {
        &SHARED[..6]
    } else {
        &SHARED[..]
    }
}

/// Why the shared certificates could not be fetched, decrypted or written.
#[derive(Debug, thiserror::Error)]
pub enum UploadCertsError {
    #[error("cannot reach the API server {server} for Secret kube-system/kubeadm-certs: {detail}")]
    Unreachable { server: String, detail: String },
    #[error("the API server {server} refused to read Secret kube-system/kubeadm-certs ({code}): {detail}")]
    Refused {
        server: String,
        code: u16,
        detail: String,
    },
    #[error("Secret kube-system/kubeadm-certs does not exist at {server}")]
    Missing { server: String },
    #[error("cannot decrypt {key:?} of Secret kube-system/kubeadm-certs: {source}")]
    Decrypt {
        key: String,
        #[source]
        source: DecryptError,
    },
    #[error("Secret kube-system/kubeadm-certs has no {key:?} (required)")]
    Incomplete { key: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is larger than {MAX_FILE} bytes", path.display())]
    TooLarge { path: PathBuf },
    #[error("{} is a symbolic link; boot writes the shared certificates only into real directories", path.display())]
    Symlink { path: PathBuf },
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl UploadCertsError {
    pub fn hint(&self) -> String {
        match self {
            UploadCertsError::Unreachable { .. } => {
                "check that the API server is running and reachable from this machine".into()
            }
            UploadCertsError::Refused { code: 401, .. } => {
                "the join's credentials are not valid: a bootstrap token expired or was deleted \
                 (create one with `boot token create` on a control-plane node), or the discovery \
                 file's user is not one the API server knows"
                    .into()
            }
            UploadCertsError::Refused { .. } => {
                "the join's credentials may not read kubeadm-certs: re-run `boot init phase \
                 upload-certs --upload-certs` on a control-plane node (it creates the Role for \
                 bootstrap tokens), or use a bootstrap token"
                    .into()
            }
            UploadCertsError::Missing { .. } => {
                "the uploaded certificates expire after two hours; run `boot init phase \
                 upload-certs --upload-certs` on a control-plane node and use the key it prints"
                    .into()
            }
            UploadCertsError::Decrypt { .. } => {
                "the --certificate-key is not the one the certificates were uploaded with; use the \
                 key `boot init phase upload-certs --upload-certs` printed"
                    .into()
            }
            UploadCertsError::Incomplete { .. } => {
                "re-run `boot init phase upload-certs --upload-certs` on a control-plane node"
                    .into()
            }
            UploadCertsError::Read { .. } | UploadCertsError::TooLarge { .. } => {
                "the PKI directory must hold the cluster's CA files (`boot init phase certs`)"
                    .into()
            }
            UploadCertsError::Symlink { .. } | UploadCertsError::Write(_) => {
                "make the PKI directory a real directory writable by root".into()
            }
        }
    }
}

/// The decrypted contents of `kubeadm-certs`, by Secret key. Empty values (files the uploading
/// node did not have, e.g. `ca.key` with an external CA) are kept as empty and never written.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SharedCertificates {
    files: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for SharedCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.files.keys()).finish()
    }
}

impl SharedCertificates {
    /// The decrypted values of a `kubeadm-certs` Secret's data. Any value that does not decrypt
    /// fails the whole set, as kubeadm's `getDataFromSecret`.
    pub fn decrypt(
        data: &BTreeMap<String, ByteString>,
        key: &CertificateKey,
    ) -> Result<Self, UploadCertsError> {
        let mut files = BTreeMap::new();
        for (name, value) in data {
            let plain = match value.0.is_empty() {
                true => Vec::new(),
                false => {
                    cipher::decrypt(&value.0, key).map_err(|source| UploadCertsError::Decrypt {
                        key: name.clone(),
                        source,
                    })?
                }
            };
            files.insert(name.clone(), plain);
        }
        Ok(SharedCertificates { files })
    }

    /// The content under Secret key `name` (`ca.crt`, `etcd-ca.key`, `external-etcd.crt`, …).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(Vec::as_slice)
    }

    /// Every Secret key present.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Writes the shared files present and non-empty into `pki_dir` (atomically, all or none;
    /// keys 0600, directories 0700) and returns their paths. The cluster's six files must be in
    /// the Secret (as kubeadm's `DownloadCerts` requires); the etcd CA is written when present.
    /// The external-etcd files are not written here: their paths come from the configuration
    /// ([`SharedCertificates::get`]).
    pub fn write_into(&self, pki_dir: &Path) -> Result<Vec<PathBuf>, UploadCertsError> {
        for required in &SHARED[..6] {
            if !self.files.contains_key(required.secret_key) {
                return Err(UploadCertsError::Incomplete {
                    key: required.secret_key.into(),
                });
            }
        }
        for dir in [pki_dir.to_path_buf(), pki_dir.join("etcd")] {
            if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.file_type().is_symlink()) {
                return Err(UploadCertsError::Symlink { path: dir });
            }
        }
        let files: Vec<RenderedFile> = SHARED
            .iter()
            .filter_map(|file| {
                let bytes = self.files.get(file.secret_key).filter(|b| !b.is_empty())?;
                Some(RenderedFile::new(
                    pki_dir.join(file.pki_path),
                    file.mode,
                    bytes.clone(),
                ))
            })
            .collect();
        write_all(&files)?;
        Ok(files.into_iter().map(|f| f.path).collect())
    }
}

/// The encrypted Secret data for the files of `shared_files(external_etcd)` under `pki_dir`, plus
/// `external` (`(secret key, path)` of the external etcd client files). A missing file becomes an
/// empty value, as kubeadm uploads it.
pub fn seal(
    pki_dir: &Path,
    external_etcd: bool,
    external: &[(&'static str, PathBuf)],
    key: &CertificateKey,
) -> Result<BTreeMap<String, ByteString>, UploadCertsError> {
    let mut data = BTreeMap::new();
    let sources = shared_files(external_etcd)
        .iter()
        .map(|f| (f.secret_key, pki_dir.join(f.pki_path)))
        .chain(external.iter().cloned());
    for (name, path) in sources {
        let value = match read_bounded(&path)? {
            Some(plain) => cipher::encrypt(&plain, key),
            None => Vec::new(),
        };
        data.insert(name.to_string(), ByteString(value));
    }
    Ok(data)
}

/// The file's bytes, `None` when it does not exist.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, UploadCertsError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(UploadCertsError::Read {
                path: path.into(),
                source,
            })
        }
    };
    let mut bytes = Vec::new();
    file.take(MAX_FILE as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| UploadCertsError::Read {
            path: path.into(),
            source,
        })?;
    if bytes.len() > MAX_FILE {
        return Err(UploadCertsError::TooLarge { path: path.into() });
    }
    Ok(Some(bytes))
}

/// Reads `kube-system/kubeadm-certs` from the discovered API server with the join's credentials
/// (the bootstrap token, or the discovery file's user) and decrypts it with `key`. Bounded by
/// `timeout` (kubeadm's `kubernetesAPICall`).
pub async fn download(
    info: &ClusterInfo,
    credentials: &JoinCredentials,
    key: &CertificateKey,
    timeout: Duration,
) -> Result<SharedCertificates, UploadCertsError> {
    let server = info.server.clone();
    let unreachable = |detail: String| UploadCertsError::Unreachable {
        server: server.clone(),
        detail,
    };
    let caller = credentials.caller(info, timeout).map_err(&unreachable)?;
    let fetched = caller
        .call(|client| async move { kube_system::<Secret>(client).get(KUBEADM_CERTS).await })
        .await;
    let secret = match fetched {
        Ok(secret) => secret,
        Err(Failure::TimedOut(_)) => {
            return Err(unreachable(format!(
                "no answer within {}s",
                timeout.as_secs()
            )))
        }
        Err(Failure::Kube(kube::Error::Api(status))) if status.code == 404 => {
            return Err(UploadCertsError::Missing {
                server: server.clone(),
            })
        }
        Err(Failure::Kube(kube::Error::Api(status))) => {
            return Err(UploadCertsError::Refused {
                server: server.clone(),
                code: status.code,
                detail: status.message.clone(),
            })
        }
        Err(Failure::Kube(e)) => return Err(unreachable(describe(&e))),
    };
    SharedCertificates::decrypt(&secret.data.unwrap_or_default(), key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn pki_with_files(dir: &Path, names: &[&SharedFile]) {
        for file in names {
            let path = dir.join(file.pki_path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, format!("content of {}", file.pki_path)).unwrap();
        }
    }

    #[test]
    fn sealed_files_decrypt_and_write_back_identically() {
        let source = tempfile::tempdir().unwrap();
        pki_with_files(source.path(), &SHARED.iter().collect::<Vec<_>>());
        let key = CertificateKey::generate();
        let data = seal(source.path(), false, &[], &key).unwrap();
        assert_eq!(
            data.keys().map(String::as_str).collect::<Vec<_>>(),
            [
                "ca.crt",
                "ca.key",
                "etcd-ca.crt",
                "etcd-ca.key",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "sa.key",
                "sa.pub"
            ]
        );
        assert!(
            !data["ca.key"].0.windows(7).any(|w| w == b"content"),
            "values are encrypted"
        );
        let shared = SharedCertificates::decrypt(&data, &key).unwrap();
        let target = tempfile::tempdir().unwrap();
        let pki = target.path().join("pki");
        let written = shared.write_into(&pki).unwrap();
        assert_eq!(written.len(), 8);
        for file in SHARED {
            let path = pki.join(file.pki_path);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                std::fs::read(source.path().join(file.pki_path)).unwrap()
            );
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, file.mode, "{}", file.pki_path);
        }
        let dir_mode = std::fs::metadata(pki.join("etcd"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
    }

    #[test]
    fn a_wrong_key_fails_and_names_the_value() {
        let source = tempfile::tempdir().unwrap();
        pki_with_files(source.path(), &SHARED.iter().collect::<Vec<_>>());
        let data = seal(source.path(), false, &[], &CertificateKey::generate()).unwrap();
        let err = SharedCertificates::decrypt(&data, &CertificateKey::generate()).unwrap_err();
        assert!(matches!(err, UploadCertsError::Decrypt { .. }), "{err}");
        assert!(err.to_string().contains("kubeadm-certs"), "{err}");
        assert!(err.hint().contains("--certificate-key"));
    }

    #[test]
    fn missing_files_upload_empty_and_are_not_written() {
        let source = tempfile::tempdir().unwrap();
        let present: Vec<&SharedFile> =
            SHARED.iter().filter(|f| f.secret_key != "ca.key").collect();
        pki_with_files(source.path(), &present);
        let key = CertificateKey::generate();
        let data = seal(source.path(), true, &[], &key).unwrap();
        assert!(data["ca.key"].0.is_empty());
        assert!(
            !data.contains_key("etcd-ca.crt"),
            "external etcd: no etcd CA"
        );
        let shared = SharedCertificates::decrypt(&data, &key).unwrap();
        let target = tempfile::tempdir().unwrap();
        let written = shared.write_into(target.path()).unwrap();
        assert_eq!(written.len(), 5);
        assert!(!target.path().join("ca.key").exists());
    }

    #[test]
    fn unknown_keys_never_become_paths_and_required_ones_are_checked() {
        let key = CertificateKey::generate();
        let mut data = BTreeMap::new();
        data.insert(
            "../../etc/passwd".to_string(),
            ByteString(cipher::encrypt(b"x", &key)),
        );
        let shared = SharedCertificates::decrypt(&data, &key).unwrap();
        let target = tempfile::tempdir().unwrap();
        let err = shared.write_into(target.path()).unwrap_err();
        assert!(matches!(err, UploadCertsError::Incomplete { .. }), "{err}");
        for file in &SHARED[..6] {
            data.insert(
                file.secret_key.into(),
                ByteString(cipher::encrypt(b"y", &key)),
            );
        }
        let shared = SharedCertificates::decrypt(&data, &key).unwrap();
        shared.write_into(&target.path().join("pki")).unwrap();
        let mut written: Vec<String> = std::fs::read_dir(target.path().join("pki"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        assert_eq!(
            written,
            [
                "ca.crt",
                "ca.key",
                "front-proxy-ca.crt",
                "front-proxy-ca.key",
                "sa.key",
                "sa.pub"
            ]
        );
        assert_eq!(
            std::fs::read_dir(target.path()).unwrap().count(),
            1,
            "only pki/"
        );
    }

    #[test]
    fn a_symlinked_pki_directory_is_refused() {
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir(target.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(target.path().join("elsewhere"), target.path().join("pki"))
            .unwrap();
        let key = CertificateKey::generate();
        let data: BTreeMap<String, ByteString> = SHARED
            .iter()
            .map(|f| {
                (
                    f.secret_key.to_string(),
                    ByteString(cipher::encrypt(b"z", &key)),
                )
            })
            .collect();
        let shared = SharedCertificates::decrypt(&data, &key).unwrap();
        let err = shared.write_into(&target.path().join("pki")).unwrap_err();
        assert!(matches!(err, UploadCertsError::Symlink { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(target.path().join("elsewhere"))
                .unwrap()
                .count(),
            0
        );
    }
}
