//! The TLS side of the kubelet API: the serving certificate (kept when it is still good for this
//! node, else issued anew from the cluster CA next to `clientCAFile`, as the kubelet writes its
//! self-signed pair to `/var/lib/kubelet/pki`) and the rustls configuration that asks for, but
//! does not require, a client certificate signed by the CA (bearer tokens are the other way in).
//!
//! Touches: reads `clientCAFile` (`<root>/etc/kubernetes/pki/ca.crt`) and `ca.key` beside it;
//! reads and writes `tlsCertFile`/`tlsPrivateKeyFile` (`<root>/var/lib/kubelet/pki/kubelet.{crt,key}`).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::host::{write_all, RenderedFile};

#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot issue the kubelet serving certificate {path}: {reason}")]
    Issue { path: PathBuf, reason: String },
    #[error(transparent)]
    Write(#[from] crate::host::WriteError),
    #[error("{path}: {reason}")]
    Tls { path: PathBuf, reason: String },
}

/// Where the serving pair and the client CA are.
#[derive(Debug, Clone)]
pub struct ServingFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: PathBuf,
}

fn read(path: &Path) -> Result<Vec<u8>, ServingError> {
    // Certificates and keys are a few KiB; 1 MiB bounds a wrong file.
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1024 * 1024).read_to_end(&mut bytes))
        .map_err(|source| ServingError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(bytes)
}

/// Keeps the serving pair when it is the CA's, for this node and its addresses, and valid another
/// day; otherwise issues one and writes it (0600, directory 0700).
pub fn ensure_certificate(
    files: &ServingFiles,
    node_name: &str,
    addresses: &[IpAddr],
) -> Result<bool, ServingError> {
    let ca = read(&files.client_ca)?;
    let now = SystemTime::now();
    if let (Ok(cert), true) = (read(&files.cert), files.key.exists()) {
        if crate::pki::serving_still_good(&cert, &ca, node_name, addresses, now) {
            return Ok(false);
        }
    }
    let ca_key_path = files.client_ca.with_extension("key");
    let ca_key = read(&ca_key_path)?;
    let issue_error = |reason: String| ServingError::Issue {
        path: files.cert.clone(),
        reason,
    };
    let ca_key = String::from_utf8(ca_key).map_err(|e| issue_error(e.to_string()))?;
    let issued =
        crate::pki::kubelet_serving(&ca, &ca_key, &files.client_ca, node_name, addresses, now)
            .map_err(|e| issue_error(e.to_string()))?;
    write_all(&[
        RenderedFile::new(files.key.clone(), 0o600, issued.key_pem),
        RenderedFile::new(files.cert.clone(), 0o600, issued.cert_pem),
    ])?;
    Ok(true)
}

/// rustls for `:10250`: the serving pair, and client certificates verified against the CA when
/// offered (anonymous TLS clients may still authenticate with a bearer token).
pub fn server_config(files: &ServingFiles) -> Result<Arc<rustls::ServerConfig>, ServingError> {
    let tls = |path: &Path| {
        let path = path.to_path_buf();
        move |reason: String| ServingError::Tls {
            path: path.clone(),
            reason,
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(&files.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| tls(&files.cert)(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| tls(&files.key)(e.to_string()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read(&files.client_ca)?) {
        let ca = ca.map_err(|e| tls(&files.client_ca)(e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| tls(&files.client_ca)(e.to_string()))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| tls(&files.client_ca)(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&files.cert)(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| tls(&files.cert)(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
