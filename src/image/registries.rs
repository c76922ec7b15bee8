//! Which hosts a pull tries and how: mirrors (in order) before the registry itself, plain HTTP
//! only for loopback registries and those the configuration marks insecure, and credentials from
//! the configuration or the kubelet's docker `config.json` (reference §2: exact `host[:port]`
//! keys, `https://` and paths stripped, Docker Hub as `index.docker.io`).
//!
//! Reads: the credentials file (`/var/lib/kubelet/config.json` by default), at most 1 MiB; a file
//! that others than its root owner may read or write is used, with a warning
//! ([`Registries::warnings`]), as `docker login` writes it 0600.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;

use super::reference::{ImageRef, DOCKER_HUB};
use super::ImageError;
use crate::config::{RegistriesConfiguration, RegistryHostConfig};
use crate::host::HostRoot;

const MAX_CREDENTIALS_BYTES: u64 = 1 << 20;

/// Registry settings ready for pulls.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    mirrors: BTreeMap<String, Vec<String>>,
    configs: BTreeMap<String, RegistryHostConfig>,
    /// From the docker `config.json`: host → (user, password).
    file_credentials: BTreeMap<String, (String, String)>,
    warnings: Vec<String>,
}

/// One host a pull may fetch from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host[:port]`.
    pub host: String,
    pub plain_http: bool,
    pub auth: RegistryAuth,
    pub mirror: bool,
}

impl Registries {
    /// The settings of `config`, with the credentials file read from under `root`.
    pub fn load(
        config: &RegistriesConfiguration,
        root: &HostRoot,
    ) -> Result<Registries, ImageError> {
        let path = root.path(&config.credentials_file);
        // The administrator's file (`docker login` writes it): links are followed, as docker's.
        let bytes = crate::host::read_bounded_if_exists(
            &path,
            MAX_CREDENTIALS_BYTES,
            crate::host::Links::Follow,
        )
        .map_err(|e| ImageError::Store {
            path: path.clone(),
            source: e.into(),
        })?;
        let warnings = bytes
            .is_some()
            .then(|| credentials_warning(&path))
            .flatten()
            .into_iter()
            .collect();
        let file_credentials = match bytes {
            Some(bytes) => parse_docker_config(&bytes)
                .map_err(|reason| ImageError::Corrupt { path, reason })?,
            None => BTreeMap::new(),
        };
        let mut configs = config.configs.clone();
        let mut mirrors = BTreeMap::new();
        for (registry, mirror) in &config.mirrors {
            let mut hosts = Vec::new();
            for endpoint in &mirror.endpoints {
                let (host, insecure) =
                    parse_endpoint(endpoint).map_err(|reason| ImageError::Config {
                        field: format!("registries.mirrors[{registry}].endpoints"),
                        reason,
                    })?;
                configs.entry(host.clone()).or_default().insecure |= insecure;
                hosts.push(host);
            }
            mirrors.insert(canonical_host(registry), hosts);
        }
        Ok(Registries {
            mirrors,
            configs,
            file_credentials,
            warnings,
        })
    }

    /// What the caller should tell the user about these settings (a credentials file others can
    /// read), each a sentence naming the file, with a hint.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The hosts to try for `image`, mirrors first.
    pub fn endpoints(&self, image: &ImageRef) -> Vec<Endpoint> {
        let registry = image.registry();
        let mirrors = self.mirrors.get(registry).into_iter().flatten();
        mirrors
            .map(|host| self.endpoint(host, true))
            .chain(std::iter::once(self.endpoint(registry, false)))
            .collect()
    }

    fn endpoint(&self, host: &str, mirror: bool) -> Endpoint {
        let config = self.configs.get(host);
        let plain_http = is_loopback(host) || config.is_some_and(|c| c.insecure);
        Endpoint {
            host: host.to_string(),
            plain_http,
            auth: self.auth_for(host, config),
            mirror,
        }
    }

    fn auth_for(&self, host: &str, config: Option<&RegistryHostConfig>) -> RegistryAuth {
        if let Some(config) = config {
            if let (Some(user), Some(password)) = (&config.username, &config.password) {
                return RegistryAuth::Basic(user.clone(), password.clone());
            }
            if let Some((user, password)) = config.auth.as_deref().and_then(decode_auth) {
                return RegistryAuth::Basic(user, password);
            }
        }
        match self.file_credentials.get(host) {
            Some((user, password)) => RegistryAuth::Basic(user.clone(), password.clone()),
            None => RegistryAuth::Anonymous,
        }
    }
}

/// A warning when the credentials file at `path` (links followed, as it is read) may be read or
/// changed by others than root and the agent's user: it holds registry passwords.
fn credentials_warning(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let euid = nix::unistd::geteuid().as_raw();
    let mode = meta.mode() & 0o7777;
    let mut problems = Vec::new();
    if meta.uid() != 0 && meta.uid() != euid {
        problems.push(format!("is owned by uid {}", meta.uid()));
    }
    if mode & 0o044 != 0 {
        problems.push(format!("is readable by group or others (mode {mode:o})"));
    }
    if mode & 0o022 != 0 {
        problems.push(format!("is writable by group or others (mode {mode:o})"));
    }
    (!problems.is_empty()).then(|| {
        format!(
            "the registry credentials file {} {}: it holds registry passwords; hint: chown root and chmod 0600 it",
            path.display(),
            problems.join(" and ")
        )
    })
}

/// `https://host[:port]` → (`host[:port]`, insecure = false); `http://…` → insecure.
fn parse_endpoint(url: &str) -> Result<(String, bool), String> {
    let (rest, insecure) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (rest, true)
    } else {
        return Err(format!("{url:?} must start with https:// or http://"));
    };
    let host = rest.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        return Err(format!(
            "{url:?} must be a scheme and host[:port], without a path"
        ));
    }
    Ok((canonical_host(host), insecure))
}

fn canonical_host(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

/// `localhost`, `127.0.0.0/8` and `::1`, with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn decode_auth(auth: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[derive(serde::Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(serde::Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The `auths` of a docker `config.json`, keyed by canonical `host[:port]`.
fn parse_docker_config(bytes: &[u8]) -> Result<BTreeMap<String, (String, String)>, String> {
    let config: DockerConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (key, entry) in config.auths {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        let credentials = match (entry.username, entry.password) {
            (Some(user), Some(password)) => Some((user, password)),
            _ => entry.auth.as_deref().and_then(decode_auth),
        };
        if let Some(credentials) = credentials {
            out.insert(canonical_host(host), credentials);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegistryMirror;

    #[test]
    fn mirrors_come_first_and_loopback_is_plain_http() {
        let mut config = RegistriesConfiguration::default();
        config.mirrors.insert(
            "registry.k8s.io".into(),
            RegistryMirror {
                endpoints: vec!["http://10.0.0.5:5000".into(), "https://m.example".into()],
            },
        );
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path()).unwrap();
        let registries = Registries::load(&config, &root).unwrap();
        let image: ImageRef = "registry.k8s.io/etcd:3.6.8-0".parse().unwrap();
        let hosts: Vec<_> = registries
            .endpoints(&image)
            .into_iter()
            .map(|e| (e.host, e.plain_http, e.mirror))
            .collect();
        assert_eq!(
            hosts,
            [
                ("10.0.0.5:5000".to_string(), true, true),
                ("m.example".to_string(), false, true),
                ("registry.k8s.io".to_string(), false, false),
            ]
        );
        let local: ImageRef = "127.0.0.1:5000/x".parse().unwrap();
        assert!(registries.endpoints(&local)[0].plain_http);
        assert!(
            is_loopback("[::1]:5000") && is_loopback("localhost") && !is_loopback("10.1.1.1:80")
        );
    }

    #[test]
    fn credentials_from_the_kubelet_config_json() {
        let dir = tempfile::tempdir().unwrap();
        let root = HostRoot::under(dir.path()).unwrap();
        let path = root.path("/var/lib/kubelet/config.json");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"r.example:5000":{"username":"a","password":"b"}}}"#,
        )
        .unwrap();
        let registries = Registries::load(&RegistriesConfiguration::default(), &root).unwrap();
        let auth = |s: &str| {
            registries
                .endpoints(&s.parse().unwrap())
                .pop()
                .unwrap()
                .auth
        };
        assert!(matches!(auth("busybox"), RegistryAuth::Basic(u, p) if u == "user" && p == "pass"));
        assert!(matches!(auth("r.example:5000/x"), RegistryAuth::Basic(u, _) if u == "a"));
        assert!(matches!(auth("r.example/x"), RegistryAuth::Anonymous));
    }
}
