//! TLS for the stand-ins: serving configs from the PEM files the manifests name (RSA PKCS#1,
//! EC SEC1 or PKCS#8 keys), a self-signed serving cert when none is given (as the real
//! controller-manager and scheduler do), optional client-certificate verification against
//! `--client-ca-file`, the client config for etcd's mTLS, and the user a client cert names.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The user a verified client certificate names: CN is the user, each O a group
/// (Kubernetes' x509 authenticator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("failed to load certificates from {path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("no certificate found in {path}"));
    }
    Ok(certs)
}

pub fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("failed to load private key from {path}: {e}"))
}

fn roots(ca_file: &str) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca_file)? {
        roots
            .add(cert)
            .map_err(|e| format!("unusable CA certificate in {ca_file}: {e}"))?;
    }
    Ok(roots)
}

/// Serving config; with `client_ca`, clients that present a cert must present one it signed
/// (Go's `VerifyClientCertIfGiven`, what the real components use).
pub fn server_config(
    cert_file: &str,
    key_file: &str,
    client_ca: Option<&str>,
) -> Result<Arc<ServerConfig>, String> {
    let certs = load_certs(cert_file)?;
    let key = load_key(key_file)?;
    finish_server_config(certs, key, client_ca)
        .map_err(|e| format!("serving cert {cert_file} / key {key_file}: {e}"))
}

/// The serving config the flags ask for: `--tls-cert-file`/`--tls-private-key-file`, else a
/// self-signed cert for the bind host; `--client-ca-file` checks clients that present a cert.
pub fn from_flags(
    flags: &crate::flags::Flags,
    bind_host: &str,
) -> Result<Arc<ServerConfig>, String> {
    let client_ca = flags.path("client-ca-file");
    match (
        flags.path("tls-cert-file"),
        flags.path("tls-private-key-file"),
    ) {
        (Some(cert), Some(key)) => server_config(cert, key, client_ca),
        _ => {
            crate::log("Generated self-signed cert in-memory");
            self_signed_server_config(bind_host, client_ca)
        }
    }
}

/// A serving cert generated at start for `localhost` and the bind host, as the real
/// controller-manager and scheduler do when `--tls-cert-file` is not given.
pub fn self_signed_server_config(
    bind_host: &str,
    client_ca: Option<&str>,
) -> Result<Arc<ServerConfig>, String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if !bind_host.is_empty()
        && !names.iter().any(|n| n == bind_host)
        && bind_host != "0.0.0.0"
        && bind_host != "::"
    {
        names.push(bind_host.to_string());
    }
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| format!("self-signed cert: {e}"))?;
    let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
        .map_err(|e| e.to_string())?;
    finish_server_config(vec![generated.cert.der().clone()], key, client_ca)
}

fn finish_server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&str>,
) -> Result<Arc<ServerConfig>, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| format!("client CA {ca}: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    // Only HTTP/1.1 is spoken; Go clients (kubectl, the kubelet) fall back to it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client config for etcd: trust `ca_file`, present `cert_file`/`key_file`.
pub fn client_config(
    ca_file: &str,
    cert_file: Option<&str>,
    key_file: Option<&str>,
) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca_file)?);
    let config = match (cert_file, key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(load_certs(cert)?, load_key(key)?)
            .map_err(|e| format!("client cert {cert} / key {key}: {e}"))?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// CN and O of a (verified) client certificate.
pub fn identity(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let user = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(Identity { user, groups })
}

/// Checks that `pem` holds a parseable certificate (used for kubeconfig files).
pub fn check_pem_cert(pem: &[u8]) -> Result<(), String> {
    let first = CertificateDer::pem_slice_iter(pem).next();
    match first {
        Some(Ok(der)) => x509_parser::parse_x509_certificate(der.as_ref())
            .map(|_| ())
            .map_err(|e| format!("certificate does not parse: {e}")),
        Some(Err(e)) => Err(format!("bad PEM: {e}")),
        None => Err("no PEM certificate".into()),
    }
}

/// Checks that `pem` holds a private key in one of the formats the components load.
pub fn check_pem_key(pem: &[u8]) -> Result<(), String> {
    PrivateKeyDer::from_pem_slice(pem)
        .map(|_| ())
        .map_err(|e| format!("no usable private key: {e}"))
}
