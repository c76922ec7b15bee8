//! File discovery, as kubeadm's `discovery/file` and `discovery/https`: a kubeconfig, from a file
//! on this host or an `https://` URL (fetched trusting the system's CA bundle), names the API
//! server and the CA to trust. That CA is trusted as given; `kube-public/cluster-info` is then
//! read from the server over TLS verified with it, and its cluster (server and CA) replaces the
//! file's, as kubeadm refreshes it; a server that does not let it be read anonymously (403, 404)
//! leaves the file's cluster in use. The credentials of the kubeconfig's user (a token, or a client
//! certificate and key) are what the join authenticates with if no `tlsBootstrapToken` is given.
//!
//! Reads the kubeconfig (and the CA, token, certificate and key files it names beside it),
//! bounded; the system CA bundle for a URL; network to the URL and to the server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use tokio::time::Instant;

use super::cluster_info::{self, ClusterInfo, KUBECONFIG_KEY};
use super::credentials::JoinCredentials;
use super::discovery::{self, Attempt, Target, RETRY_INTERVAL};
use super::DiscoveryError;
use crate::http::tls::ServerTrust;

/// A kubeconfig, or a CA bundle, is a few KB; a system CA bundle a few hundred.
const MAX_FILE: u64 = 4 << 20;
/// Where Go's crypto/x509 looks for the system's CA bundle on Linux (after `SSL_CERT_FILE`).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// `--discovery-file` / `discovery.file.kubeConfigPath`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryFile {
    Path(PathBuf),
    Url(String),
}

impl DiscoveryFile {
    /// An `https://` URL or a file path; other URL schemes are refused (kubeadm fetches https
    /// only: the file's CA is trusted blindly, so how it arrives must be trusted).
    pub fn parse(value: &str) -> Result<DiscoveryFile, FileDiscoveryError> {
        if value.starts_with("https://") {
            return Ok(DiscoveryFile::Url(value.to_string()));
        }
        if value.contains("://") {
            return Err(FileDiscoveryError::Read {
                origin: value.to_string(),
                detail: "only a file path or an https:// URL can be a discovery file".into(),
            });
        }
        if value.is_empty() {
            return Err(FileDiscoveryError::Read {
                origin: value.to_string(),
                detail: "empty".into(),
            });
        }
        Ok(DiscoveryFile::Path(PathBuf::from(value)))
    }

    fn name(&self) -> String {
        match self {
            DiscoveryFile::Path(path) => path.display().to_string(),
            DiscoveryFile::Url(url) => url.clone(),
        }
    }
}

/// The CA certificates an `https://` discovery URL is verified against.
#[derive(Debug, Clone)]
pub struct WebRoots(Vec<Vec<u8>>);

impl WebRoots {
    /// The system's bundle: `SSL_CERT_FILE`, or the first of the usual places that exists.
    pub fn system() -> Result<WebRoots, FileDiscoveryError> {
        let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
        let path = from_env
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
            .find(|p| p.is_file())
            .ok_or_else(|| FileDiscoveryError::Read {
                origin: "the system CA bundle".into(),
                detail: format!(
                    "none of SSL_CERT_FILE, {} exists",
                    SYSTEM_BUNDLES.join(", ")
                ),
            })?;
        WebRoots::from_pem(&read_bounded(&path)?)
    }

    pub fn from_pem(pem: &[u8]) -> Result<WebRoots, FileDiscoveryError> {
        let ders = certificates(pem);
        if ders.is_empty() {
            return Err(FileDiscoveryError::Read {
                origin: "the CA bundle".into(),
                detail: "it holds no PEM certificate".into(),
            });
        }
        Ok(WebRoots(ders))
    }
}

/// What file discovery found.
#[derive(Debug, Clone)]
pub struct FileDiscovered {
    pub info: ClusterInfo,
    /// The kubeconfig user's credentials, when it has a token or a client certificate.
    pub credentials: Option<JoinCredentials>,
    /// Whether the server's cluster-info replaced the file's cluster.
    pub refreshed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileDiscoveryError {
    #[error("cannot read the discovery file {origin}: {detail}")]
    Read { origin: String, detail: String },
    #[error("the discovery file {origin} is not a usable kubeconfig: {detail}")]
    Kubeconfig { origin: String, detail: String },
    #[error("discovery file {origin}: {error}")]
    Server {
        origin: String,
        #[source]
        error: DiscoveryError,
    },
}

impl FileDiscoveryError {
    pub fn hint(&self) -> String {
        match self {
            FileDiscoveryError::Read { .. } | FileDiscoveryError::Kubeconfig { .. } => {
                "give a kubeconfig with the cluster's server and certificate-authority-data, e.g. `kubectl -n kube-public get configmap cluster-info -o jsonpath='{.data.kubeconfig}'` on a control-plane node".into()
            }
            FileDiscoveryError::Server { error, .. } => match error {
                DiscoveryError::Untrusted { .. } => "the server's certificate is not signed by the discovery file's CA: the file is stale or from another cluster".into(),
                other => other.hint(),
            },
        }
    }
}

/// Reads the kubeconfig and checks it against its server within `timeout`.
pub async fn discover_file(
    file: &DiscoveryFile,
    web_roots: impl FnOnce() -> Result<WebRoots, FileDiscoveryError>,
    timeout: Duration,
) -> Result<FileDiscovered, FileDiscoveryError> {
    let origin = file.name();
    let (text, base) = match file {
        DiscoveryFile::Path(path) => (read_bounded(path)?, path.parent().map(Path::to_path_buf)),
        DiscoveryFile::Url(url) => (fetch(url, &web_roots()?, timeout).await?, None),
    };
    let bad = |detail: String| FileDiscoveryError::Kubeconfig {
        origin: origin.clone(),
        detail,
    };
    let text = String::from_utf8(text).map_err(|_| bad("not UTF-8".into()))?;
    let (info, credentials) = from_kubeconfig(&text, base.as_deref()).map_err(bad)?;
    let server = |error| FileDiscoveryError::Server {
        origin: origin.clone(),
        error,
    };
    let (authority, _) = split_https(&info.server).map_err(|e| bad(format!("server: {e}")))?;
    let target = Target::parse(&authority).map_err(server)?;
    let trust = ServerTrust::Roots(info.ca_ders());
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let attempt_deadline = deadline.min(Instant::now() + discovery::ATTEMPT_TIMEOUT);
        let outcome =
            tokio::time::timeout_at(attempt_deadline, discovery::read_once(&target, &trust)).await;
        let error = match outcome {
            Err(_) => discovery::unreachable(&target, "no answer".into(), started),
            Ok(Ok(config_map)) => {
                let data = config_map.data.unwrap_or_default();
                let kubeconfig = data.get(KUBECONFIG_KEY).ok_or_else(|| {
                    server(DiscoveryError::ClusterInfo {
                        endpoint: target.endpoint.clone(),
                        source: cluster_info::ClusterInfoError::Missing("kubeconfig key"),
                    })
                })?;
                let refreshed = cluster_info::parse(kubeconfig).map_err(|source| {
                    server(DiscoveryError::ClusterInfo {
                        endpoint: target.endpoint.clone(),
                        source,
                    })
                })?;
                return Ok(FileDiscovered {
                    info: refreshed,
                    credentials,
                    refreshed: true,
                });
            }
            // kubeadm: the TLS certificate is valid, so the file's cluster is good.
            Ok(Err(Attempt::Absent(_))) => {
                return Ok(FileDiscovered {
                    info,
                    credentials,
                    refreshed: false,
                })
            }
            Ok(Err(Attempt::Final(error))) => return Err(server(error)),
            Ok(Err(Attempt::Retry(error))) => error,
        };
        if Instant::now() + RETRY_INTERVAL >= deadline {
            return Err(server(discovery::with_waited(error, started.elapsed())));
        }
        tokio::time::sleep(RETRY_INTERVAL).await;
    }
}

/// The cluster of the current context (or the only cluster), its CA (inline, or a file relative
/// to `base`), and the current user's credentials.
fn from_kubeconfig(
    text: &str,
    base: Option<&Path>,
) -> Result<(ClusterInfo, Option<JoinCredentials>), String> {
    let config = kube::config::Kubeconfig::from_yaml(text).map_err(|e| e.to_string())?;
    let context = config
        .current_context
        .as_deref()
        .filter(|c| !c.is_empty())
        .and_then(|name| config.contexts.iter().find(|c| c.name == name))
        .and_then(|c| c.context.as_ref());
    let cluster = match (context, config.clusters.as_slice()) {
        (Some(context), _) => config
            .clusters
            .iter()
            .find(|c| c.name == context.cluster)
            .ok_or_else(|| format!("its current context names no cluster {:?}", context.cluster))?,
        (None, [only]) => only,
        (None, all) => {
            return Err(format!(
                "it has {} clusters and no current context to choose one",
                all.len()
            ))
        }
    };
    let cluster = cluster.cluster.as_ref().ok_or("its cluster is empty")?;
    let server = cluster
        .server
        .clone()
        .filter(|s| !s.is_empty())
        .ok_or("its cluster has no server")?;
    split_https(&server).map_err(|e| format!("server: {e}"))?;
    let ca_pem = inline_or_beside(
        "certificate-authority",
        cluster.certificate_authority_data.as_deref(),
        cluster.certificate_authority.as_deref(),
        base,
    )?
    .ok_or("its cluster has no certificate authority")?;
    if certificates(&ca_pem).is_empty() {
        return Err("its certificate authority holds no PEM certificate".into());
    }
    let ca_pem = String::from_utf8(ca_pem).map_err(|_| "its CA is not PEM text")?;
    let user = context
        .and_then(|c| c.user.as_deref())
        .and_then(|user| config.auth_infos.iter().find(|a| a.name == user))
        .and_then(|a| a.auth_info.as_ref());
    let credentials = match user {
        Some(user) => user_credentials(user, base)?,
        None => None,
    };
    Ok((ClusterInfo { server, ca_pem }, credentials))
}

/// A user's client certificate and key, else its token (the API server tries certificates
/// first); `None` when it has neither (e.g. only an `exec` plugin, which boot does not run).
fn user_credentials(
    user: &kube::config::AuthInfo,
    base: Option<&Path>,
) -> Result<Option<JoinCredentials>, String> {
    use secrecy::ExposeSecret;
    let cert = inline_or_beside(
        "client-certificate",
        user.client_certificate_data.as_deref(),
        user.client_certificate.as_deref(),
        base,
    )?;
    let key = inline_or_beside(
        "client-key",
        user.client_key_data.as_ref().map(|k| k.expose_secret()),
        user.client_key.as_deref(),
        base,
    )?;
    match (cert, key) {
        (Some(cert), Some(key)) => {
            if certificates(&cert).is_empty() {
                return Err("its user's client certificate holds no PEM certificate".into());
            }
            let key = String::from_utf8(key)
                .ok()
                .filter(|k| k.contains("PRIVATE KEY-----"))
                .ok_or("its user's client key is not a PEM private key")?;
            let cert = String::from_utf8(cert)
                .map_err(|_| "its user's client certificate is not PEM text")?;
            return Ok(Some(JoinCredentials::ClientCertificate {
                cert_pem: cert,
                key_pem: key.into(),
            }));
        }
        (Some(_), None) => return Err("its user has a client certificate but no client key".into()),
        (None, Some(_)) => return Err("its user has a client key but no client certificate".into()),
        (None, None) => {}
    }
    let token = match &user.token {
        Some(token) => Some(token.expose_secret().as_bytes().to_vec()),
        None => inline_or_beside("tokenFile", None, user.token_file.as_deref(), base)?,
    };
    let token = token
        .map(String::from_utf8)
        .transpose()
        .map_err(|_| "its user's token is not text")?;
    Ok(token
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .map(|t| JoinCredentials::Token(t.into())))
}

/// A kubeconfig value given inline (`<field>-data`, base64) or as a file relative to `base` (the
/// kubeconfig's directory; a URL has none).
fn inline_or_beside(
    field: &str,
    data: Option<&str>,
    file: Option<&str>,
    base: Option<&Path>,
) -> Result<Option<Vec<u8>>, String> {
    match (data, file) {
        (Some(data), _) => base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map(Some)
            .map_err(|e| format!("{field}-data: {e}")),
        (None, Some(path)) => {
            let base = base.ok_or_else(|| format!("{field} names a file, which a URL cannot"))?;
            read_bounded(&base.join(path))
                .map(Some)
                .map_err(|e| e.to_string())
        }
        (None, None) => Ok(None),
    }
}

/// `https://host[:port][/path]` as (`host:port`, `/path`); the port defaults to 443.
fn split_https(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url:?} is not an https:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(_, p)| p.starts_with(':')),
        None => authority.contains(':'),
    };
    let authority = match has_port {
        true => authority.to_string(),
        false => format!("{authority}:443"),
    };
    Ok((authority, path.to_string()))
}

/// GET of an https:// URL verified with `roots`; the body, bounded.
async fn fetch(
    url: &str,
    roots: &WebRoots,
    timeout: Duration,
) -> Result<Vec<u8>, FileDiscoveryError> {
    let fail = |detail: String| FileDiscoveryError::Read {
        origin: url.to_string(),
        detail,
    };
    let (authority, path) = split_https(url).map_err(&fail)?;
    let target = Target::parse(&authority).map_err(|e| fail(e.to_string()))?;
    let trust = ServerTrust::Roots(roots.0.clone());
    let get = discovery::tls_get(&target, &trust, &path, "*/*");
    let response = match tokio::time::timeout(timeout, get).await {
        Err(_) => return Err(fail(format!("no answer within {}s", timeout.as_secs()))),
        Ok(Err(Attempt::Final(DiscoveryError::Untrusted { detail, .. }))) => {
            return Err(fail(format!(
                "its certificate is not trusted by the system CA bundle: {detail}"
            )))
        }
        Ok(Err(Attempt::Final(e) | Attempt::Retry(e) | Attempt::Absent(e))) => {
            return Err(fail(e.to_string()))
        }
        Ok(Ok(response)) => response,
    };
    if response.status != http::StatusCode::OK {
        return Err(fail(format!("HTTP {}", response.status)));
    }
    if response.truncated || response.body.len() as u64 > MAX_FILE {
        return Err(fail(format!("larger than {MAX_FILE} bytes")));
    }
    Ok(response.body.to_vec())
}

/// A file the user names (or the kubeconfig names beside it): links are followed, as kubeadm does.
fn read_bounded(path: &Path) -> Result<Vec<u8>, FileDiscoveryError> {
    crate::host::read_bounded(path, MAX_FILE, crate::host::Links::Follow).map_err(|e| {
        FileDiscoveryError::Read {
            origin: path.display().to_string(),
            detail: e.to_string(),
        }
    })
}

fn certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    pem::parse_many(pem)
        .unwrap_or_default()
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| block.into_contents())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBeTCCAR+gAwIBAgIUYmFzZTY0IG9mIG5vdGhpbmcwCgYIKoZIzj0EAwIwADAe\n-----END CERTIFICATE-----\n";

    fn kubeconfig(clusters: &str, current: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n- name: ctx\n  context:\n    cluster: b\n    user: u\ncurrent-context: \"{current}\"\nusers:\n- name: u\n  user:\n{user}"
        )
    }

    fn cluster(name: &str, server: &str) -> String {
        cluster_with(name, server, CA)
    }

    fn cluster_with(name: &str, server: &str, ca: &str) -> String {
        let data = base64::engine::general_purpose::STANDARD.encode(ca);
        format!("- name: {name}\n  cluster:\n    server: {server}\n    certificate-authority-data: {data}\n")
    }

    /// The token, or `cert:<PEM>` for a client certificate, to compare.
    fn shown(credentials: Option<JoinCredentials>) -> Option<String> {
        use secrecy::ExposeSecret;
        credentials.map(|c| match c {
            JoinCredentials::Token(t) => t.expose_secret().to_string(),
            JoinCredentials::ClientCertificate { cert_pem, key_pem } => {
                assert!(key_pem.expose_secret().contains("PRIVATE KEY"));
                format!("cert:{cert_pem}")
            }
        })
    }

    const KEY: &str =
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA==\n-----END EC PRIVATE KEY-----\n";

    #[test]
    fn the_current_contexts_cluster_and_its_users_token() {
        let clusters =
            cluster("a", "https://10.0.0.1:6443") + &cluster("b", "https://10.0.0.2:6443");
        let text = kubeconfig(&clusters, "ctx", "    token: abcdef.0123456789abcdef\n");
        let (info, credentials) = from_kubeconfig(&text, None).unwrap();
        assert_eq!(info.server, "https://10.0.0.2:6443");
        assert_eq!(info.ca_pem, CA);
        assert_eq!(shown(credentials).unwrap(), "abcdef.0123456789abcdef");

        // Two clusters and no current context: which one is not guessed.
        let err = from_kubeconfig(&kubeconfig(&clusters, "", ""), None).unwrap_err();
        assert!(err.contains("2 clusters"), "{err}");
        // One cluster is used without a context, and then there is no user.
        let one = kubeconfig(&cluster("b", "https://cp:6443"), "", "    token: t\n");
        let (info, credentials) = from_kubeconfig(&one, None).unwrap();
        assert_eq!(info.server, "https://cp:6443");
        assert!(credentials.is_none());
        // Any token is the user's credentials, as for kubeadm (not only a bootstrap token).
        let other = kubeconfig(
            &cluster("b", "https://cp:6443"),
            "ctx",
            "    token: sa-token\n",
        );
        assert_eq!(
            shown(from_kubeconfig(&other, None).unwrap().1).unwrap(),
            "sa-token"
        );
        // A user with nothing boot can use (an exec plugin) has no credentials.
        let exec = kubeconfig(
            &cluster("b", "https://cp:6443"),
            "ctx",
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/true\n",
        );
        assert!(from_kubeconfig(&exec, None).unwrap().1.is_none());
    }

    #[test]
    fn a_users_client_certificate_inline_or_beside_the_file() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let clusters = cluster("b", "https://cp:6443");
        let inline = kubeconfig(
            &clusters,
            "ctx",
            &format!(
                "    client-certificate-data: {}\n    client-key-data: {}\n    token: ignored\n",
                b64(CA),
                b64(KEY)
            ),
        );
        let expected = format!("cert:{CA}");
        assert_eq!(
            shown(from_kubeconfig(&inline, None).unwrap().1).unwrap(),
            expected
        );

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("me.crt"), CA).unwrap();
        std::fs::write(dir.path().join("me.key"), KEY).unwrap();
        std::fs::write(dir.path().join("token"), "from-a-file\n").unwrap();
        let files = kubeconfig(
            &clusters,
            "ctx",
            "    client-certificate: me.crt\n    client-key: me.key\n",
        );
        let found = from_kubeconfig(&files, Some(dir.path())).unwrap().1;
        assert_eq!(shown(found).unwrap(), expected);
        // Files need a directory: a kubeconfig fetched from a URL has none.
        let err = from_kubeconfig(&files, None).unwrap_err();
        assert!(err.contains("client-certificate names a file"), "{err}");
        let token_file = kubeconfig(&clusters, "ctx", "    tokenFile: token\n");
        let found = from_kubeconfig(&token_file, Some(dir.path())).unwrap().1;
        assert_eq!(shown(found).unwrap(), "from-a-file");

        // Half a pair, or what is not PEM, is refused rather than ignored.
        let half = kubeconfig(&clusters, "ctx", "    client-certificate: me.crt\n");
        let err = from_kubeconfig(&half, Some(dir.path())).unwrap_err();
        assert!(err.contains("no client key"), "{err}");
        let not_key = kubeconfig(
            &clusters,
            "ctx",
            "    client-certificate: me.crt\n    client-key: token\n",
        );
        let err = from_kubeconfig(&not_key, Some(dir.path())).unwrap_err();
        assert!(err.contains("not a PEM private key"), "{err}");
    }

    #[test]
    fn refuses_what_cannot_be_trusted() {
        let plain = kubeconfig(&cluster("b", "http://10.0.0.2:6443"), "ctx", "");
        assert!(from_kubeconfig(&plain, None).unwrap_err().contains("https"));
        let no_ca = "apiVersion: v1\nkind: Config\nclusters:\n- name: b\n  cluster:\n    server: https://h:1\n";
        assert!(from_kubeconfig(no_ca, None)
            .unwrap_err()
            .contains("no certificate authority"));
        let not_pem = no_ca.to_string() + "    certificate-authority-data: aGVsbG8=\n";
        assert!(from_kubeconfig(&not_pem, None)
            .unwrap_err()
            .contains("no PEM certificate"));
        // A CA file is read beside the kubeconfig, never for a URL.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), CA).unwrap();
        let by_file = no_ca.to_string() + "    certificate-authority: ca.crt\n";
        let (info, _) = from_kubeconfig(&by_file, Some(dir.path())).unwrap();
        assert_eq!(info.ca_pem, CA);
        assert!(from_kubeconfig(&by_file, None).is_err());
    }

    #[test]
    fn locations_and_urls() {
        assert_eq!(
            DiscoveryFile::parse("/etc/kubernetes/discovery.conf").unwrap(),
            DiscoveryFile::Path("/etc/kubernetes/discovery.conf".into())
        );
        assert!(matches!(
            DiscoveryFile::parse("https://h/x").unwrap(),
            DiscoveryFile::Url(_)
        ));
        for bad in ["http://h/x", "ftp://h", ""] {
            assert!(DiscoveryFile::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            split_https("https://h.example/c/kubeconfig").unwrap(),
            ("h.example:443".into(), "/c/kubeconfig".into())
        );
        assert_eq!(
            split_https("https://[fd00::1]:8443").unwrap(),
            ("[fd00::1]:8443".into(), "/".into())
        );
        assert!(split_https("http://h").is_err());
    }

    #[tokio::test]
    async fn a_server_nothing_answers_on_fails_naming_the_file_after_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("discovery.conf");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = params.self_signed(&key).unwrap().pem();
        let server = format!("https://127.0.0.1:{port}");
        std::fs::write(
            &path,
            kubeconfig(&cluster_with("b", &server, &ca), "ctx", ""),
        )
        .unwrap();
        let file = DiscoveryFile::Path(path.clone());
        let no_roots = || -> Result<WebRoots, FileDiscoveryError> {
            unreachable!("a path needs no web roots")
        };
        let err = discover_file(&file, no_roots, Duration::from_millis(1500))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()) && text.contains("cannot connect"),
            "{text}"
        );
    }
}
