//! Placeholder until the PKI branch lands: the contract config and render code against.
#![allow(dead_code, unused_variables)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::host::RenderedFile;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum KeyAlgorithm {
    #[default]
    #[serde(rename = "RSA-2048")]
    Rsa2048,
    #[serde(rename = "ECDSA-P256")]
    EcdsaP256,
}

#[derive(Debug, thiserror::Error)]
#[error("pki placeholder")]
pub struct PkiError;

pub struct PkiRequest {
    pub cert_dir: PathBuf,
    pub node_name: String,
    pub advertise_address: IpAddr,
    pub first_service_ip: IpAddr,
    pub dns_domain: String,
    pub control_plane_endpoint_host: Option<String>,
    pub apiserver_cert_sans: Vec<String>,
    pub etcd_server_cert_sans: Vec<String>,
    pub etcd_peer_cert_sans: Vec<String>,
    pub local_etcd: bool,
    pub algorithm: KeyAlgorithm,
    pub cert_validity: Duration,
    pub ca_validity: Duration,
    pub now: SystemTime,
}

pub struct ExistingPki;
impl ExistingPki {
    pub fn load(cert_dir: &Path) -> Result<Self, PkiError> {
        Ok(ExistingPki)
    }
    pub fn empty() -> Self {
        ExistingPki
    }
}

pub struct Pki {
    pub files: Vec<RenderedFile>,
    pub external_ca: bool,
    pub warnings: Vec<String>,
}

pub struct ClientCredentials {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    pub fn ca_cert_pem(&self) -> &str {
        todo!()
    }
    pub fn client_credentials(&self, cn: &str, organizations: &[&str]) -> Result<ClientCredentials, PkiError> {
        todo!()
    }
}

pub fn issue(req: &PkiRequest, existing: &ExistingPki) -> Result<Pki, PkiError> {
    todo!()
}
