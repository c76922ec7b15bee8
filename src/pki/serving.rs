//! The kubelet API's serving certificate (`/var/lib/kubelet/pki/kubelet.crt`): the kubelet
//! self-signs one when `tlsCertFile` is not set; boot's agent has the cluster CA at hand and has it
//! sign instead, so that a client verifying against `ca.crt` accepts the node's `:10250`. CN is
//! the node name, SANs the node name and its addresses, ExtKeyUsage ServerAuth, validity one year
//! (client-go's `GenerateSelfSignedCertKey`). Pure: PEM in, PEM out.

use std::net::IpAddr;
use std::path::Path;
use std::time::SystemTime;

use super::inspect::CertFacts;
use super::keys::{KeyAlgorithm, PrivateKey};
use super::profiles::{ExtKeyUsage, KeyUsage};
use super::sans::AltNames;
use super::sign::{cert_pem, sign, CertSpec, Signer};
use super::{ClientCredentials, PkiError, CERT_VALIDITY};

const SERVING_KEY_USAGES: [KeyUsage; 2] = [KeyUsage::DigitalSignature, KeyUsage::KeyEncipherment];
const SERVING_EXT_KEY_USAGES: [ExtKeyUsage; 1] = [ExtKeyUsage::ServerAuth];

/// Issues the serving certificate for `node_name` at `addresses`, signed by the CA.
pub fn kubelet_serving(
    ca_cert_pem: &[u8],
    ca_key_pem: &str,
    ca_path: &Path,
    node_name: &str,
    addresses: &[IpAddr],
    now: SystemTime,
) -> Result<ClientCredentials, PkiError> {
    let ca_cert = CertFacts::from_pem(ca_cert_pem, ca_path)?;
    if !ca_cert.is_ca {
        return Err(PkiError::NotACa {
            path: ca_path.to_path_buf(),
        });
    }
    let ca_key = PrivateKey::from_pem(ca_key_pem).map_err(|reason| PkiError::ParseKey {
        path: ca_path.with_extension("key"),
        reason,
    })?;
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
    let alt_names = AltNames {
        dns: vec![node_name.to_string()],
        ips: addresses.to_vec(),
    };
    let spec = CertSpec {
        name: "kubelet",
        cn: node_name,
        orgs: &[],
        is_ca: false,
        key_usages: &SERVING_KEY_USAGES,
        ext_key_usages: &SERVING_EXT_KEY_USAGES,
        alt_names: &alt_names,
        now,
        validity: CERT_VALIDITY,
    };
    let signer = Signer {
        cert: &ca_cert,
        key: &ca_key,
    };
    let der = sign(&spec, &key, Some(&signer))?;
    Ok(ClientCredentials {
        cert_pem: cert_pem(&der),
        key_pem: key.pem().to_string(),
    })
}

/// Whether `cert_pem` is a serving certificate from this CA that covers `addresses` and
/// `node_name` and is valid for at least another day: then the agent keeps it.
pub fn serving_still_good(
    cert_pem: &[u8],
    ca_cert_pem: &[u8],
    node_name: &str,
    addresses: &[IpAddr],
    now: SystemTime,
) -> bool {
    let path = Path::new("kubelet.crt");
    let (Ok(cert), Ok(ca)) = (
        CertFacts::from_pem(cert_pem, path),
        CertFacts::from_pem(ca_cert_pem, path),
    ) else {
        return false;
    };
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    cert.verify_signed_by(&ca).is_ok()
        && cert.has_ext_key_usage(ExtKeyUsage::ServerAuth)
        && cert.not_before <= now
        && cert.not_after > now + 86_400
        && cert.dns.iter().any(|d| d == node_name)
        && addresses.iter().all(|ip| cert.ips.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{issue, ExistingPki, PkiRequest};

    #[test]
    fn signed_by_the_ca_for_the_node_and_kept_while_good() {
        let dir = tempfile::tempdir().unwrap();
        let mut req = PkiRequest::with_defaults(dir.path(), "node-a", "10.0.0.5".parse().unwrap());
        req.algorithm = KeyAlgorithm::EcdsaP256;
        let pki = issue(&req, &ExistingPki::empty()).unwrap();
        let file = |name: &str| {
            pki.files
                .iter()
                .find(|f| f.path.ends_with(name))
                .unwrap()
                .bytes
                .clone()
        };
        let (ca_crt, ca_key) = (file("ca.crt"), file("ca.key"));
        let ips: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap()];
        let now = SystemTime::now();
        let issued = kubelet_serving(
            &ca_crt,
            std::str::from_utf8(&ca_key).unwrap(),
            Path::new("ca.crt"),
            "node-a",
            &ips,
            now,
        )
        .unwrap();
        let facts = CertFacts::from_pem(issued.cert_pem.as_bytes(), Path::new("k")).unwrap();
        assert_eq!(facts.cn.as_deref(), Some("node-a"));
        assert!(serving_still_good(
            issued.cert_pem.as_bytes(),
            &ca_crt,
            "node-a",
            &ips,
            now
        ));
        let other: Vec<IpAddr> = vec!["10.0.0.6".parse().unwrap()];
        assert!(!serving_still_good(
            issued.cert_pem.as_bytes(),
            &ca_crt,
            "node-a",
            &other,
            now
        ));
        assert!(!serving_still_good(
            issued.cert_pem.as_bytes(),
            &ca_crt,
            "node-b",
            &ips,
            now
        ));
        let later = now + CERT_VALIDITY;
        assert!(!serving_still_good(
            issued.cert_pem.as_bytes(),
            &ca_crt,
            "node-a",
            &ips,
            later
        ));
    }
}
