//! A blocking HTTP/1.1 client over rustls for talking to the stand-ins: verified against the
//! test CA with or without the admin client cert, or unverified like the kubelet's probes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting `ca.crt` and presenting the admin cert (or no cert).
pub fn client(dir: &Path, with_cert: bool) -> Arc<ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(if with_cert {
        let cert = CertificateDer::from_pem_file(dir.join("admin.crt")).unwrap();
        builder
            .with_client_auth_cert(
                vec![cert],
                PrivateKeyDer::from_pem_file(dir.join("admin.key")).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    })
}

/// Accepts any server certificate, as the kubelet's HTTPS probes do.
#[derive(Debug)]
pub struct AnyServerCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub fn insecure_client() -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCert(provider())))
            .with_no_client_auth(),
    )
}

/// One HTTP/1.1 request to 127.0.0.1:`port` (TLS when `tls` is given): (status, body).
pub fn request(
    port: u16,
    tls: Option<&Arc<ClientConfig>>,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
    let mut raw = Vec::new();
    let result = match tls {
        Some(config) => {
            let conn = rustls::ClientConnection::new(
                config.clone(),
                ServerName::try_from("127.0.0.1").unwrap(),
            )
            .unwrap();
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            stream
                .write_all(head.as_bytes())
                .and_then(|_| stream.read_to_end(&mut raw))
        }
        None => {
            let mut tcp = tcp;
            tcp.write_all(head.as_bytes())
                .and_then(|_| tcp.read_to_end(&mut raw))
        }
    };
    result.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    Ok((status, body.to_string()))
}

pub fn get(port: u16, tls: &Arc<ClientConfig>, path: &str) -> (u16, String) {
    request(port, Some(tls), "GET", path, "").unwrap()
}
