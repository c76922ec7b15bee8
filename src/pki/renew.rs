//! Re-issuing a leaf certificate from its CA with the attributes of the one it replaces, as
//! `kubeadm certs renew` does (renewal/manager.go, `certToConfig`): the same CN, O, SANs, key
//! usages and extended key usages; a fresh key and serial; NotBefore now − 5m, NotAfter now +
//! validity. Pure: PEM in, PEM out.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::inspect::CertFacts;
use super::keys::{KeyAlgorithm, PrivateKey};
use super::profiles::KeyUsage;
use super::sans::AltNames;
use super::sign::{cert_pem, sign, CertSpec, Signer};
use super::{ClientCredentials, PkiError};

/// What renewing one certificate needs. Paths are only named in errors.
pub struct Renewal<'a> {
    /// kubeadm's name (`apiserver`, `admin.conf`, …).
    pub name: &'a str,
    pub cert_path: &'a Path,
    pub cert_pem: &'a [u8],
    pub ca_path: &'a Path,
    pub ca_cert_pem: &'a [u8],
    pub ca_key_pem: &'a str,
    pub algorithm: KeyAlgorithm,
    pub now: SystemTime,
    pub validity: Duration,
}

/// The leaf's usages when its certificate has no KeyUsage extension: kubeadm's leaf default.
const DEFAULT_LEAF_USAGES: [KeyUsage; 2] = [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];

/// Issues the replacement certificate and its new key.
pub fn renew(renewal: &Renewal) -> Result<ClientCredentials, PkiError> {
    let old = CertFacts::from_pem(renewal.cert_pem, renewal.cert_path)?;
    let ca = CertFacts::from_pem(renewal.ca_cert_pem, renewal.ca_path)?;
    let ca_key = PrivateKey::from_pem(renewal.ca_key_pem).map_err(|reason| PkiError::ParseKey {
        path: renewal.ca_path.with_extension("key"),
        reason,
    })?;
    if ca.public_key_raw != ca_key.public_key_raw() {
        return Err(PkiError::KeyMismatch {
            cert: renewal.ca_path.to_path_buf(),
            key: renewal.ca_path.with_extension("key"),
        });
    }
    // A certificate the CA never signed is not this cluster's: renewing it would hand out a
    // certificate with attributes nobody chose.
    old.verify_signed_by(&ca)
        .map_err(|reason| PkiError::NotSignedByCa {
            name: renewal.name.to_string(),
            path: renewal.cert_path.to_path_buf(),
            ca: renewal.ca_path.to_path_buf(),
            reason,
        })?;
    if old.is_ca {
        return Err(PkiError::Sign {
            name: renewal.name.to_string(),
            reason: "it is a CA certificate; CAs are not renewed (as kubeadm)".into(),
        });
    }
    let cn = old.cn.clone().ok_or_else(|| PkiError::Sign {
        name: renewal.name.to_string(),
        reason: "the existing certificate has no CommonName".into(),
    })?;
    let key_usages = old
        .key_usages
        .clone()
        .unwrap_or_else(|| DEFAULT_LEAF_USAGES.to_vec());
    let alt_names = AltNames {
        dns: old.dns.clone(),
        ips: old.ips.clone(),
    };
    let spec = CertSpec {
        name: renewal.name,
        cn: &cn,
        orgs: &old.orgs,
        is_ca: false,
        key_usages: &key_usages,
        ext_key_usages: &old.ext_key_usages,
        alt_names: &alt_names,
        now: renewal.now,
        validity: renewal.validity,
    };
    let key = PrivateKey::generate(renewal.algorithm)?;
    let der = sign(
        &spec,
        &key,
        Some(&Signer {
            cert: &ca,
            key: &ca_key,
        }),
    )?;
    Ok(ClientCredentials {
        cert_pem: cert_pem(&der),
        key_pem: key.pem().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;
    use std::path::PathBuf;

    use super::*;
    use crate::pki::{issue, ExistingPki, PkiRequest};

    fn pki_files() -> (PkiRequest, std::collections::HashMap<String, Vec<u8>>) {
        let mut req =
            PkiRequest::with_defaults("/pki", "node-a", "192.0.2.10".parse::<IpAddr>().unwrap());
        req.algorithm = KeyAlgorithm::EcdsaP256;
        let pki = issue(&req, &ExistingPki::empty()).unwrap();
        let files = pki
            .files
            .iter()
            .map(|f| {
                let name = f.path.strip_prefix("/pki").unwrap().display().to_string();
                (name, f.bytes.clone())
            })
            .collect();
        (req, files)
    }

    fn renewal<'a>(
        files: &'a std::collections::HashMap<String, Vec<u8>>,
        cert: &'a str,
        ca: &'a str,
        later: SystemTime,
    ) -> Renewal<'a> {
        Renewal {
            name: cert,
            cert_path: Path::new("/pki/leaf.crt"),
            cert_pem: &files[&format!("{cert}.crt")],
            ca_path: Path::new("/pki/ca.crt"),
            ca_cert_pem: &files[&format!("{ca}.crt")],
            ca_key_pem: std::str::from_utf8(&files[&format!("{ca}.key")]).unwrap(),
            algorithm: KeyAlgorithm::EcdsaP256,
            now: later,
            validity: Duration::from_secs(3600),
        }
    }

    #[test]
    fn renewed_certificate_keeps_subject_sans_and_usages_with_new_key_serial_and_dates() {
        let (req, files) = pki_files();
        let later = req.now + Duration::from_secs(86_400);
        let new = renew(&renewal(&files, "apiserver", "ca", later)).unwrap();
        let path = PathBuf::from("x");
        let old = CertFacts::from_pem(&files["apiserver.crt"], &path).unwrap();
        let fresh = CertFacts::from_pem(new.cert_pem.as_bytes(), &path).unwrap();
        assert_eq!(fresh.cn, old.cn);
        assert_eq!(fresh.orgs, old.orgs);
        assert_eq!(fresh.dns, old.dns);
        assert_eq!(fresh.ips, old.ips);
        assert_eq!(fresh.key_usages, old.key_usages);
        assert_eq!(fresh.ext_key_usages, old.ext_key_usages);
        assert_ne!(fresh.public_key_raw, old.public_key_raw, "a new key");
        assert_ne!(fresh.der, old.der);
        let later_unix = later
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert_eq!(fresh.not_after, later_unix + 3600);
        assert_eq!(fresh.not_before, later_unix - 300);
        let ca = CertFacts::from_pem(&files["ca.crt"], &path).unwrap();
        fresh.verify_signed_by(&ca).unwrap();
        let key = PrivateKey::from_pem(&new.key_pem).unwrap();
        assert_eq!(key.public_key_raw(), fresh.public_key_raw.as_slice());
    }

    #[test]
    fn a_certificate_of_another_ca_or_a_ca_is_refused() {
        let (req, files) = pki_files();
        let now = req.now;
        let err = renew(&renewal(&files, "etcd/server", "ca", now)).unwrap_err();
        assert!(err.to_string().contains("not signed by its CA"), "{err}");
        let err = renew(&renewal(&files, "front-proxy-ca", "front-proxy-ca", now)).unwrap_err();
        assert!(err.to_string().contains("CAs are not renewed"), "{err}");
    }
}
