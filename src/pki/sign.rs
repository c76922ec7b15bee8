//! Builds X.509 certificates the way kubeadm's pki_helpers.go does (NewSelfSignedCACert,
//! NewSignedCert) and signs them with rcgen. Pure apart from the random serial number.

use std::time::{Duration, SystemTime};

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use super::inspect::CertFacts;
use super::keys::{PrivateKey, CERTIFICATE_LABEL};
use super::profiles::{ExtKeyUsage, KeyUsage};
use super::sans::AltNames;
use super::PkiError;

/// kubeadm's CertificateBackdate (constants.go): NotBefore is this long before the start time,
/// so clocks slightly behind still accept fresh certificates.
pub const CERTIFICATE_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Everything about one certificate except its key and its signer.
#[derive(Debug, Clone)]
pub struct CertSpec<'a> {
    /// kubeadm's name for messages, e.g. `apiserver`.
    pub name: &'a str,
    pub cn: &'a str,
    pub orgs: &'a [String],
    pub is_ca: bool,
    pub key_usages: &'a [KeyUsage],
    pub ext_key_usages: &'a [ExtKeyUsage],
    pub alt_names: &'a AltNames,
    pub now: SystemTime,
    pub validity: Duration,
}

/// A CA able to sign: its certificate as parsed and its key.
pub struct Signer<'a> {
    pub cert: &'a CertFacts,
    pub key: &'a PrivateKey,
}

/// Issues `spec` for `key`: self-signed when `signer` is `None`. Returns the certificate's DER.
pub fn sign(
    spec: &CertSpec,
    key: &PrivateKey,
    signer: Option<&Signer>,
) -> Result<Vec<u8>, PkiError> {
    let failed = |reason: String| PkiError::Sign {
        name: spec.name.to_string(),
        reason,
    };
    let params = params(spec).map_err(failed)?;
    let cert = match signer {
        None => params.self_signed(key.pair()),
        Some(ca) => {
            if !ca.cert.simple_subject {
                return Err(failed(
                    "the CA's subject has multi-valued name attributes, which cannot be \
                     reproduced as the issuer"
                        .into(),
                ));
            }
            let issuer = Issuer::from_ca_cert_der(&ca.cert.der.as_slice().into(), ca.key.pair())
                .map_err(|e| failed(format!("cannot use the CA certificate: {e}")))?;
            params.signed_by(key.pair(), &issuer)
        }
    };
    cert.map(|c| c.der().to_vec())
        .map_err(|e| failed(e.to_string()))
}

/// PEM for a certificate DER.
pub fn cert_pem(der: &[u8]) -> String {
    super::keys::pem_encode(CERTIFICATE_LABEL, der)
}

fn params(spec: &CertSpec) -> Result<CertificateParams, String> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    // Go's pkix.Name puts O before CN. rcgen keeps one value per attribute type.
    match spec.orgs {
        [] => {}
        [o] => dn.push(DnType::OrganizationName, o.as_str()),
        _ => return Err("at most one organization (O) is supported".into()),
    }
    dn.push(DnType::CommonName, spec.cn);
    params.distinguished_name = dn;

    let start = OffsetDateTime::from(spec.now);
    let start = start.replace_nanosecond(0).map_err(|e| e.to_string())?;
    params.not_before = start - CERTIFICATE_BACKDATE;
    params.not_after = start + spec.validity;
    params.serial_number = Some(random_serial());

    // BasicConstraintsValid=true on every cert; CAs without a path length limit.
    params.is_ca = if spec.is_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        // Go sets the AuthorityKeyId of a signed cert from its parent's SubjectKeyId.
        params.use_authority_key_identifier_extension = true;
        IsCa::ExplicitNoCa
    };
    params.key_usages = spec
        .key_usages
        .iter()
        .map(|u| match u {
            KeyUsage::DigitalSignature => KeyUsagePurpose::DigitalSignature,
            KeyUsage::KeyEncipherment => KeyUsagePurpose::KeyEncipherment,
            KeyUsage::CertSign => KeyUsagePurpose::KeyCertSign,
        })
        .collect();
    params.extended_key_usages = spec
        .ext_key_usages
        .iter()
        .map(|u| match u {
            ExtKeyUsage::ServerAuth => ExtendedKeyUsagePurpose::ServerAuth,
            ExtKeyUsage::ClientAuth => ExtendedKeyUsagePurpose::ClientAuth,
        })
        .collect();
    for dns in &spec.alt_names.dns {
        let name = dns
            .clone()
            .try_into()
            .map_err(|e| format!("SAN {dns:?}: {e}"))?;
        params.subject_alt_names.push(SanType::DnsName(name));
    }
    params
        .subject_alt_names
        .extend(spec.alt_names.ips.iter().copied().map(SanType::IpAddress));
    Ok(params)
}

/// A random serial in [1, MaxInt64), as kubeadm's NewSignedCert draws it.
fn random_serial() -> SerialNumber {
    let serial: i64 = rand::thread_rng().gen_range(1..i64::MAX);
    SerialNumber::from_slice(&serial.to_be_bytes())
}
