//! Reads back what a certificate says (subject, usages, SANs, validity, key) with x509-parser,
//! so certificates found on disk can be checked against their profile. Pure.

use std::net::IpAddr;
use std::path::Path;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use super::keys::CERTIFICATE_LABEL;
use super::profiles::{ExtKeyUsage, KeyUsage};
use super::PkiError;

/// The facts of one certificate that the reuse rules look at.
#[derive(Debug, Clone)]
pub struct CertFacts {
    pub der: Vec<u8>,
    pub cn: Option<String>,
    pub orgs: Vec<String>,
    pub is_ca: bool,
    /// `None` when the certificate has no KeyUsage extension (then every usage is allowed).
    pub key_usages: Option<Vec<KeyUsage>>,
    pub ext_key_usages: Vec<ExtKeyUsage>,
    /// ExtKeyUsage anyExtendedKeyUsage, which satisfies every ext key usage.
    pub any_ext_key_usage: bool,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// The raw public key, to compare with a private key.
    pub public_key_raw: Vec<u8>,
    /// Every RDN of the subject has one attribute (rcgen can only re-encode those as an issuer).
    pub simple_subject: bool,
}

impl CertFacts {
    /// Parses the first `CERTIFICATE` block of a PEM file, as client-go's certutil does.
    pub fn from_pem(bytes: &[u8], path: &Path) -> Result<CertFacts, PkiError> {
        let blocks = pem::parse_many(bytes).map_err(|e| PkiError::Pem {
            path: path.to_path_buf(),
            expected: "certificate",
            reason: e.to_string(),
        })?;
        let block = blocks
            .into_iter()
            .find(|b| b.tag() == CERTIFICATE_LABEL)
            .ok_or_else(|| PkiError::Pem {
                path: path.to_path_buf(),
                expected: "certificate",
                reason: "no CERTIFICATE block".into(),
            })?;
        CertFacts::from_der(block.into_contents(), path)
    }

    pub fn from_der(der: Vec<u8>, path: &Path) -> Result<CertFacts, PkiError> {
        let bad = |reason: String| PkiError::ParseCert {
            path: path.to_path_buf(),
            reason,
        };
        let (_, cert) = X509Certificate::from_der(&der).map_err(|e| bad(e.to_string()))?;
        let subject = cert.subject();
        let text = |a: &x509_parser::x509::AttributeTypeAndValue| a.as_str().ok().map(String::from);
        let cn = subject.iter_common_name().next().and_then(text);
        let orgs = subject.iter_organization().filter_map(text).collect();
        let simple_subject = subject.iter().all(|rdn| rdn.iter().count() == 1);

        let is_ca = cert
            .basic_constraints()
            .map_err(|e| bad(e.to_string()))?
            .is_some_and(|bc| bc.value.ca);
        let key_usages = cert.key_usage().map_err(|e| bad(e.to_string()))?.map(|ku| {
            let ku = ku.value;
            [
                (ku.digital_signature(), KeyUsage::DigitalSignature),
                (ku.key_encipherment(), KeyUsage::KeyEncipherment),
                (ku.key_cert_sign(), KeyUsage::CertSign),
            ]
            .into_iter()
            .filter_map(|(set, usage)| set.then_some(usage))
            .collect()
        });
        let (mut ext_key_usages, mut any_ext_key_usage) = (Vec::new(), false);
        if let Some(eku) = cert.extended_key_usage().map_err(|e| bad(e.to_string()))? {
            any_ext_key_usage = eku.value.any;
            if eku.value.server_auth {
                ext_key_usages.push(ExtKeyUsage::ServerAuth);
            }
            if eku.value.client_auth {
                ext_key_usages.push(ExtKeyUsage::ClientAuth);
            }
        }
        let (mut dns, mut ips) = (Vec::new(), Vec::new());
        if let Some(san) = cert
            .subject_alternative_name()
            .map_err(|e| bad(e.to_string()))?
        {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => dns.push(d.to_string()),
                    GeneralName::IPAddress(raw) => {
                        if let Some(ip) = ip_from_bytes(raw) {
                            ips.push(ip);
                        }
                    }
                    _ => {}
                }
            }
        }
        let facts = CertFacts {
            cn,
            orgs,
            is_ca,
            key_usages,
            ext_key_usages,
            any_ext_key_usage,
            dns,
            ips,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            public_key_raw: cert.public_key().subject_public_key.data.to_vec(),
            simple_subject,
            der: Vec::new(),
        };
        Ok(CertFacts { der, ..facts })
    }

    pub fn has_key_usage(&self, usage: KeyUsage) -> bool {
        self.key_usages.as_ref().is_none_or(|u| u.contains(&usage))
    }

    pub fn has_ext_key_usage(&self, usage: ExtKeyUsage) -> bool {
        self.any_ext_key_usage || self.ext_key_usages.contains(&usage)
    }

    /// Checks that `ca` signed this certificate: issuer name and signature.
    pub fn verify_signed_by(&self, ca: &CertFacts) -> Result<(), String> {
        let parse = |der| {
            X509Certificate::from_der(der)
                .map(|(_, c)| c)
                .map_err(|e| e.to_string())
        };
        let cert = parse(&self.der)?;
        let ca_cert = parse(&ca.der)?;
        if cert.issuer().as_raw() != ca_cert.subject().as_raw() {
            return Err(format!(
                "issued by \"{}\", not by \"{}\"",
                cert.issuer(),
                ca_cert.subject()
            ));
        }
        cert.verify_signature(Some(ca_cert.public_key()))
            .map_err(|_| "the signature does not verify with the CA's public key".to_string())
    }
}

fn ip_from_bytes(raw: &[u8]) -> Option<IpAddr> {
    match raw.len() {
        4 => <[u8; 4]>::try_from(raw).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(raw).ok().map(IpAddr::from),
        _ => None,
    }
}

/// Formats Unix seconds as RFC 3339 for messages.
pub fn format_time(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}
