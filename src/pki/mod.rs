//! The cluster PKI (reference §2): CAs, leaf certificates and the service-account key pair,
//! issued from the certificate profiles kept as data in `pki/profiles.yaml`, plus the client
//! certificates of the kubeconfigs (reference §3).
//!
//! Host paths: only [`ExistingPki::load`] reads the certificates directory
//! (`<root>/etc/kubernetes/pki` by default); [`issue`] is pure and returns the files to write
//! (`ca.{crt,key}`, `etcd/ca.{crt,key}`, …, `sa.{key,pub}`) as [`RenderedFile`]s.

mod client;
mod error;
mod inspect;
mod issue;
mod keys;
mod profiles;
mod renew;
mod reuse;
mod sans;
mod serving;
mod sign;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

pub use client::ClientSubject;
pub use error::PkiError;
pub use issue::{issue, CERT_MODE, KEY_MODE};
pub use keys::{generate_keys, KeyAlgorithm, PrivateKey};
pub use profiles::{CertProfile, CommonName, ExtKeyUsage, KeyUsage, Profiles, SanRule, Signer};
pub use renew::{renew, Renewal};
pub use reuse::ExistingPki;
pub use sans::{alt_names, is_dns1123_subdomain, is_wildcard_dns1123_subdomain, AltNames};
pub use serving::{kubelet_serving, serving_still_good};
pub use sign::CERTIFICATE_BACKDATE;

#[cfg(test)]
mod tests_support;

use crate::host::RenderedFile;
pub use inspect::{format_time, CertFacts};

/// kubeadm's CertificateValidityPeriod (constants.go, `certificateValidityPeriod: 8760h`).
pub const CERT_VALIDITY: Duration = Duration::from_secs(8760 * 3600);
/// kubeadm's CACertificateValidityPeriod (`caCertificateValidityPeriod: 87600h`).
pub const CA_VALIDITY: Duration = Duration::from_secs(87600 * 3600);

/// Everything the PKI depends on, already defaulted by the configuration.
#[derive(Debug, Clone)]
pub struct PkiRequest {
    /// Already `--root`-prefixed; where the files live and will be written.
    pub cert_dir: PathBuf,
    pub node_name: String,
    pub advertise_address: IpAddr,
    /// The first IP of the first service CIDR (10.96.0.1 by default).
    pub first_service_ip: IpAddr,
    /// `networking.dnsDomain`, `cluster.local` by default.
    pub dns_domain: String,
    /// The host of `controlPlaneEndpoint` (IP or DNS name), port already stripped.
    pub control_plane_endpoint_host: Option<String>,
    pub apiserver_cert_sans: Vec<String>,
    pub etcd_server_cert_sans: Vec<String>,
    pub etcd_peer_cert_sans: Vec<String>,
    /// `false` = external etcd: no etcd CA and no certificate signed by it.
    pub local_etcd: bool,
    pub algorithm: KeyAlgorithm,
    pub cert_validity: Duration,
    pub ca_validity: Duration,
    /// The start time: NotBefore = now − 5m (CertificateBackdate), NotAfter = now + validity.
    pub now: SystemTime,
}

impl PkiRequest {
    /// A request with kubeadm's defaults for everything but the node's identity.
    pub fn with_defaults(
        cert_dir: impl Into<PathBuf>,
        node_name: &str,
        advertise_address: IpAddr,
    ) -> Self {
        PkiRequest {
            cert_dir: cert_dir.into(),
            node_name: node_name.to_string(),
            advertise_address,
            first_service_ip: IpAddr::V4(Ipv4Addr::new(10, 96, 0, 1)),
            dns_domain: "cluster.local".into(),
            control_plane_endpoint_host: None,
            apiserver_cert_sans: Vec::new(),
            etcd_server_cert_sans: Vec::new(),
            etcd_peer_cert_sans: Vec::new(),
            local_etcd: true,
            algorithm: KeyAlgorithm::default(),
            cert_validity: CERT_VALIDITY,
            ca_validity: CA_VALIDITY,
            now: SystemTime::now(),
        }
    }
}

/// What happened to one certificate (or the `sa` key pair), for kubeadm-style progress lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertOutcome {
    /// kubeadm's name, e.g. `apiserver`, `sa`.
    pub name: String,
    /// Base file name under the certificates directory, e.g. `etcd/server`.
    pub file: String,
    pub action: CertAction,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertAction {
    Generated,
    /// Found on disk, checked, and kept as is.
    Reused,
    /// A CA certificate without its key (external CA mode).
    ExternalCa,
}

/// The issued PKI: the files to write and the cluster CA, which signs kubeconfig client certs.
pub struct Pki {
    /// Only files to (re)write; reused files are not rewritten.
    pub files: Vec<RenderedFile>,
    /// `ca.crt` without `ca.key`: the controller manager gets no cluster-signing files, and
    /// kubeconfigs must already exist.
    pub external_ca: bool,
    /// certSANs entries that were skipped, as kubeadm warns about them.
    pub warnings: Vec<String>,
    /// Per certificate, in issuing order, then `sa`.
    pub outcomes: Vec<CertOutcome>,
    ca_cert: CertFacts,
    ca_cert_pem: String,
    ca_key: Option<PrivateKey>,
    algorithm: KeyAlgorithm,
    cert_validity: Duration,
    now: SystemTime,
}

impl fmt::Debug for Pki {
    /// Leaves out the keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<_> = self.files.iter().map(|file| &file.path).collect();
        f.debug_struct("Pki")
            .field("files", &paths)
            .field("external_ca", &self.external_ca)
            .field("warnings", &self.warnings)
            .field("outcomes", &self.outcomes)
            .finish_non_exhaustive()
    }
}

/// A kubeconfig client certificate and its key, PEM-encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}
