//! boot's secure defaults for the API server, which kubeadm leaves off: Secrets encrypted at rest
//! in etcd (`--encryption-provider-config`) and an audit log (`--audit-policy-file`,
//! `--audit-log-*`). Both are ordinary flags, hostPath volumes and files rendered from templates,
//! so `extraArgs`/`extraVolumes` override them as any default, and `BootConfiguration`
//! (`encryptionAtRest.enabled`, `audit.enabled`) turns them off.
//!
//! The encryption key is generated once: an existing encryption configuration is never rewritten
//! (its key is what decrypts the data already in etcd); one that does not parse is an error, not
//! something to replace.
//!
//! Host paths: `/etc/kubernetes/encryption/config.yaml`, `/etc/kubernetes/audit/policy.yaml`
//! (both 0600 in 0700 directories), the log directory `/var/log/kubernetes/audit`.

use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rand::RngCore;

use super::flags::{Flag, Paths};
use super::templates::Templates;
use super::volumes::{volume, VolumeSpec};
use super::RenderError;
use crate::config::{Config, HostPathType};
use crate::host::RenderedFile;

/// Relative to the kubernetes directory (`/etc/kubernetes`).
pub const ENCRYPTION_CONFIG: &str = "encryption/config.yaml";
pub const AUDIT_POLICY: &str = "audit/policy.yaml";
pub const AUDIT_LOG_DIR: &str = "/var/log/kubernetes/audit";

/// An encryption configuration is a few hundred bytes; anything past this is not ours.
const MAX_EXISTING: u64 = 1024 * 1024;

fn dir_of(paths: &Paths, file: &str) -> String {
    let full = format!("{}/{file}", paths.kubernetes_dir);
    Path::new(&full)
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or(full)
}

/// The API server's flags for what is enabled.
pub fn apiserver_flags(cfg: &Config, paths: &Paths, audit_log_dir: &str) -> Vec<Flag> {
    let mut flags = Vec::new();
    if cfg.boot.encryption_at_rest.enabled {
        flags.push((
            "encryption-provider-config".into(),
            format!("{}/{ENCRYPTION_CONFIG}", paths.kubernetes_dir),
        ));
        // Lets `boot secrets rotate-key` add and retire keys without restarting the API server.
        flags.push((
            "encryption-provider-config-automatic-reload".into(),
            "true".into(),
        ));
    }
    let audit = &cfg.boot.audit;
    if audit.enabled {
        flags.extend([
            ("audit-log-maxage".into(), audit.max_age.to_string()),
            ("audit-log-maxbackup".into(), audit.max_backup.to_string()),
            ("audit-log-maxsize".into(), audit.max_size.to_string()),
            (
                "audit-log-path".into(),
                format!("{audit_log_dir}/audit.log"),
            ),
            (
                "audit-policy-file".into(),
                format!("{}/{AUDIT_POLICY}", paths.kubernetes_dir),
            ),
        ]);
    }
    flags
}

/// The API server's hostPath volumes for what is enabled.
pub fn apiserver_volumes(cfg: &Config, paths: &Paths, audit_log_dir: &str) -> Vec<VolumeSpec> {
    let mut volumes = Vec::new();
    if cfg.boot.encryption_at_rest.enabled {
        volumes.push(volume(
            "encryption-config",
            &dir_of(paths, ENCRYPTION_CONFIG),
            HostPathType::DirectoryOrCreate,
            true,
        ));
    }
    if cfg.boot.audit.enabled {
        volumes.push(volume(
            "audit-policy",
            &dir_of(paths, AUDIT_POLICY),
            HostPathType::DirectoryOrCreate,
            true,
        ));
        volumes.push(volume(
            "audit-log",
            audit_log_dir,
            HostPathType::DirectoryOrCreate,
            false,
        ));
    }
    volumes
}

/// The files the enabled defaults need under `kubernetes_dir`: the audit policy, and the
/// encryption configuration unless one already exists there.
pub fn files(
    cfg: &Config,
    templates: &Templates,
    kubernetes_dir: &Path,
) -> Result<Vec<RenderedFile>, RenderError> {
    let mut files = Vec::new();
    let encryption = &cfg.boot.encryption_at_rest;
    if encryption.enabled {
        let path = kubernetes_dir.join(ENCRYPTION_CONFIG);
        if !existing_encryption_config(&path)? {
            let mut secret = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut secret);
            let mut context = tera::Context::new();
            context.insert("resources", &encryption.resources);
            context.insert("provider", encryption.provider.as_str());
            context.insert("key_name", "key1");
            context.insert("secret", &BASE64.encode(secret));
            let text = templates.render("encryption-config.yaml.tera", &context)?;
            files.push(RenderedFile::new(path, 0o600, text));
        }
    }
    if cfg.boot.audit.enabled {
        let text = templates.render("audit-policy.yaml.tera", &tera::Context::new())?;
        files.push(RenderedFile::new(
            kubernetes_dir.join(AUDIT_POLICY),
            0o600,
            text,
        ));
    }
    Ok(files)
}

/// `true` when a usable encryption configuration is already there; an error when something is
/// there that is not one (it may hold the only key to data in etcd: never overwrite it).
fn existing_encryption_config(path: &Path) -> Result<bool, RenderError> {
    let invalid = |why: String| RenderError::EncryptionConfigInvalid {
        path: path.to_path_buf(),
        why,
    };
    let bytes = crate::host::read_bounded_if_exists(path, MAX_EXISTING, crate::host::Links::Refuse)
        .map_err(|e| invalid(e.to_string()))?;
    let Some(bytes) = bytes else {
        return Ok(false);
    };
    let doc: serde_yaml::Value =
        serde_yaml::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
    if doc.get("kind").and_then(|k| k.as_str()) != Some("EncryptionConfiguration") {
        return Err(invalid("kind is not EncryptionConfiguration".into()));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, HostFacts, Overrides};

    fn cfg(boot_yaml: &str) -> Config {
        let yaml = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n---\n\
             apiVersion: boot/v1alpha1\nkind: BootConfiguration\n{boot_yaml}"
        );
        let docs = config::parse("test.yaml", &yaml).unwrap();
        let facts = HostFacts {
            hostname: "node".into(),
            default_address: Some([10, 0, 0, 1].into()),
            ..HostFacts::default()
        };
        Config::build(docs, &Overrides::default(), &facts).unwrap()
    }

    fn rendered(cfg: &Config, dir: &Path) -> Vec<RenderedFile> {
        files(cfg, &Templates::built_in().unwrap(), dir).unwrap()
    }

    #[test]
    fn a_fresh_key_is_32_random_bytes_and_never_the_same_twice() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = cfg("encryptionAtRest: {provider: aescbc, resources: [secrets, configmaps]}\n");
        let secret = |files: &[RenderedFile]| {
            let doc: serde_yaml::Value = serde_yaml::from_slice(&files[0].bytes).unwrap();
            let providers = &doc["resources"][0]["providers"];
            assert_eq!(doc["resources"][0]["resources"][1], "configmaps");
            assert_eq!(
                providers[1]["identity"],
                serde_yaml::Value::Mapping(Default::default())
            );
            let key = providers[0]["aescbc"]["keys"][0]["secret"]
                .as_str()
                .unwrap();
            BASE64.decode(key).unwrap()
        };
        let (a, b) = (rendered(&cfg, dir.path()), rendered(&cfg, dir.path()));
        assert_eq!(a[0].mode, 0o600);
        assert_eq!(secret(&a).len(), 32);
        assert_ne!(secret(&a), secret(&b));
        assert!(a[1].path.ends_with(AUDIT_POLICY));
    }

    #[test]
    fn an_existing_configuration_is_kept_and_a_broken_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ENCRYPTION_CONFIG);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "kind: EncryptionConfiguration\nresources: []\n").unwrap();
        let files = rendered(&cfg(""), dir.path());
        assert!(files.iter().all(|f| f.path != path), "kept as it is");

        std::fs::write(&path, "kind: Secret\n").unwrap();
        let err = files_err(dir.path());
        assert!(
            err.contains("not a usable encryption configuration"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        let err = files_err(dir.path());
        assert!(err.contains("cannot open"), "{err}");
    }

    fn files_err(dir: &Path) -> String {
        files(&cfg(""), &Templates::built_in().unwrap(), dir)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn turned_off_there_is_nothing_to_render() {
        let cfg = cfg("encryptionAtRest: {enabled: false}\naudit: {enabled: false}\n");
        let dir = tempfile::tempdir().unwrap();
        assert!(rendered(&cfg, dir.path()).is_empty());
        let paths = Paths {
            cert_dir: "/pki".into(),
            kubernetes_dir: "/etc/kubernetes".into(),
            root: crate::host::HostRoot::system(),
        };
        assert!(apiserver_flags(&cfg, &paths, AUDIT_LOG_DIR).is_empty());
        assert!(apiserver_volumes(&cfg, &paths, AUDIT_LOG_DIR).is_empty());
    }
}
