//! Private keys: generation (RSA with aws-lc through rcgen, ECDSA with `p256`/`p384`, in parallel
//! on every core), kubeadm's PEM encodings and parsing keys found on disk. Pure apart from the
//! operating system's random number generator; touches no host path.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use p256::pkcs8::der::asn1::AnyRef;
use p256::pkcs8::spki::AlgorithmIdentifierRef;
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use p256::pkcs8::{ObjectIdentifier, PrivateKeyInfo};
use rand::rngs::OsRng;
use rcgen::{KeyPair, PublicKeyData, RsaKeySize, SignatureAlgorithm};
use sec1::der::{Decode, Encode};

use super::PkiError;

/// PEM labels kubeadm writes (client-go keyutil, reference §2).
pub const RSA_PRIVATE_KEY_LABEL: &str = "RSA PRIVATE KEY";
pub const EC_PRIVATE_KEY_LABEL: &str = "EC PRIVATE KEY";
pub const PKCS8_PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
pub const PUBLIC_KEY_LABEL: &str = "PUBLIC KEY";
pub const CERTIFICATE_LABEL: &str = "CERTIFICATE";

/// `rsaEncryption` (RFC 8017), the algorithm of an RSA key in PKCS#8.
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// ClusterConfiguration.encryptionAlgorithm (v1beta4); the default mirrors kubeadm's RSA-2048.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyAlgorithm {
    #[default]
    Rsa2048,
    Rsa3072,
    Rsa4096,
    EcdsaP256,
    /// Added in kubeadm 1.34 (k/k#131677).
    EcdsaP384,
}

impl KeyAlgorithm {
    pub const ALL: [KeyAlgorithm; 5] = [
        KeyAlgorithm::Rsa2048,
        KeyAlgorithm::Rsa3072,
        KeyAlgorithm::Rsa4096,
        KeyAlgorithm::EcdsaP256,
        KeyAlgorithm::EcdsaP384,
    ];

    /// kubeadm's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa2048 => "RSA-2048",
            KeyAlgorithm::Rsa3072 => "RSA-3072",
            KeyAlgorithm::Rsa4096 => "RSA-4096",
            KeyAlgorithm::EcdsaP256 => "ECDSA-P256",
            KeyAlgorithm::EcdsaP384 => "ECDSA-P384",
        }
    }

    /// The signature algorithm Go's x509 picks for a signer with this key.
    fn signature(self) -> &'static SignatureAlgorithm {
        match self {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                &rcgen::PKCS_RSA_SHA256
            }
            KeyAlgorithm::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyAlgorithm::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = PkiError;
    /// An empty value means the default, as in kubeadm's GeneratePrivateKey.
    fn from_str(s: &str) -> Result<Self, PkiError> {
        if s.is_empty() {
            return Ok(KeyAlgorithm::default());
        }
        KeyAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| PkiError::UnknownAlgorithm {
                value: s.to_string(),
            })
    }
}

impl serde::Serialize for KeyAlgorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for KeyAlgorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A private key ready to sign (as an rcgen key pair) with its kubeadm PEM encoding.
pub struct PrivateKey {
    pair: KeyPair,
    pem: String,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("algorithm", self.pair.algorithm())
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Generates one key.
    pub fn generate(alg: KeyAlgorithm) -> Result<PrivateKey, PkiError> {
        let failed = |e: &dyn fmt::Display| PkiError::KeyGeneration {
            algorithm: alg.to_string(),
            reason: e.to_string(),
        };
        let ec = |pkcs8: &[u8]| -> Result<PrivateKey, PkiError> {
            let sec1 = sec1_with_curve(pkcs8).map_err(|e| failed(&e))?;
            let pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.into(), alg.signature())
                .map_err(|e| failed(&e))?;
            Ok(PrivateKey {
                pair,
                pem: pem_encode(EC_PRIVATE_KEY_LABEL, &sec1),
            })
        };
        match alg {
            KeyAlgorithm::Rsa2048 | KeyAlgorithm::Rsa3072 | KeyAlgorithm::Rsa4096 => {
                let size = match alg {
                    KeyAlgorithm::Rsa2048 => RsaKeySize::_2048,
                    KeyAlgorithm::Rsa3072 => RsaKeySize::_3072,
                    _ => RsaKeySize::_4096,
                };
                let pair =
                    KeyPair::generate_rsa_for(alg.signature(), size).map_err(|e| failed(&e))?;
                let pkcs1 = pkcs1_of(pair.serialized_der()).map_err(|e| failed(&e))?;
                Ok(PrivateKey {
                    pem: pem_encode(RSA_PRIVATE_KEY_LABEL, &pkcs1),
                    pair,
                })
            }
            KeyAlgorithm::EcdsaP256 => {
                let key = p256::SecretKey::random(&mut OsRng);
                ec(key.to_pkcs8_der().map_err(|e| failed(&e))?.as_bytes())
            }
            KeyAlgorithm::EcdsaP384 => {
                let key = p384::SecretKey::random(&mut OsRng);
                ec(key.to_pkcs8_der().map_err(|e| failed(&e))?.as_bytes())
            }
        }
    }

    /// Parses a key file as kubeadm accepts it: PKCS#1 (`RSA PRIVATE KEY`), SEC1
    /// (`EC PRIVATE KEY`, P-256 or P-384) or PKCS#8 (`PRIVATE KEY`). The PEM is kept as found.
    pub fn from_pem(pem: &str) -> Result<PrivateKey, String> {
        let block = pem::parse(pem).map_err(|e| e.to_string())?;
        let der = block.contents();
        let (pkcs8, alg): (Vec<u8>, &'static SignatureAlgorithm) = match block.tag() {
            RSA_PRIVATE_KEY_LABEL => (rsa_pkcs8_of(der)?, &rcgen::PKCS_RSA_SHA256),
            EC_PRIVATE_KEY_LABEL => ec_to_pkcs8(der)?,
            PKCS8_PRIVATE_KEY_LABEL => pkcs8_with_alg(der)?,
            other => return Err(format!("unexpected PEM block {other:?}")),
        };
        let pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_slice().into(), alg)
            .map_err(|e| e.to_string())?;
        Ok(PrivateKey {
            pair,
            pem: pem.to_string(),
        })
    }

    pub fn pair(&self) -> &KeyPair {
        &self.pair
    }

    /// The private key in kubeadm's PEM encoding.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The raw public key (the BIT STRING of the SubjectPublicKeyInfo), to compare with a cert.
    pub fn public_key_raw(&self) -> &[u8] {
        self.pair.der_bytes()
    }

    /// The PKIX `PUBLIC KEY` PEM, as kubeadm writes `sa.pub`.
    pub fn public_key_pem(&self) -> String {
        pem_encode(PUBLIC_KEY_LABEL, &self.pair.subject_public_key_info())
    }
}

/// Generates `n` keys on every available core (std::thread::scope workers pulling from a shared
/// counter), so the RSA keys of a full PKI take roughly 1/cores of the serial time.
pub fn generate_keys(alg: KeyAlgorithm, n: usize) -> Result<Vec<PrivateKey>, PkiError> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .min(n);
    if workers <= 1 {
        return (0..n).map(|_| PrivateKey::generate(alg)).collect();
    }
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Result<PrivateKey, PkiError>>> = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let key = PrivateKey::generate(alg);
                    // A poisoned lock only means another worker panicked; keep its results.
                    done.lock().unwrap_or_else(|p| p.into_inner()).push(key);
                }
            });
        }
    });
    done.into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .collect()
}

/// PEM with LF line endings and 64-column lines, as Go's encoding/pem writes it.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new(label, der), config)
}

/// Re-encodes the ECPrivateKey inside a PKCS#8 document with the named-curve parameters, as Go's
/// x509.MarshalECPrivateKey does (the RustCrypto encoder leaves them out).
fn sec1_with_curve(pkcs8_der: &[u8]) -> Result<Vec<u8>, String> {
    let info = p256::pkcs8::PrivateKeyInfo::from_der(pkcs8_der).map_err(|e| e.to_string())?;
    let curve = info.algorithm.parameters_oid().map_err(|e| e.to_string())?;
    let mut key = sec1::EcPrivateKey::from_der(info.private_key).map_err(|e| e.to_string())?;
    key.parameters = Some(sec1::EcParameters::NamedCurve(curve));
    key.to_der().map_err(|e| e.to_string())
}

/// SEC1 → PKCS#8 for rcgen, picking the curve from the parameters (or the key length).
fn ec_to_pkcs8(der: &[u8]) -> Result<(Vec<u8>, &'static SignatureAlgorithm), String> {
    let key = sec1::EcPrivateKey::from_der(der).map_err(|e| e.to_string())?;
    let curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .map(|oid| oid.to_string());
    let p384 = match curve.as_deref() {
        Some("1.2.840.10045.3.1.7") => false,
        Some("1.3.132.0.34") => true,
        Some(other) => return Err(format!("unsupported curve {other} (P-256 and P-384 are)")),
        None => key.private_key.len() == 48,
    };
    let pkcs8 = if p384 {
        let k = p384::SecretKey::from_sec1_der(der).map_err(|e| e.to_string())?;
        k.to_pkcs8_der().map_err(|e| e.to_string())?
    } else {
        let k = p256::SecretKey::from_sec1_der(der).map_err(|e| e.to_string())?;
        k.to_pkcs8_der().map_err(|e| e.to_string())?
    };
    let alg = if p384 {
        &rcgen::PKCS_ECDSA_P384_SHA384
    } else {
        &rcgen::PKCS_ECDSA_P256_SHA256
    };
    Ok((pkcs8.as_bytes().to_vec(), alg))
}

/// The PKCS#1 `RSAPrivateKey` inside an RSA PKCS#8 document (kubeadm writes PKCS#1).
fn pkcs1_of(pkcs8_der: &[u8]) -> Result<Vec<u8>, String> {
    let info = PrivateKeyInfo::from_der(pkcs8_der).map_err(|e| e.to_string())?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(format!("not an RSA key (algorithm {})", info.algorithm.oid));
    }
    Ok(info.private_key.to_vec())
}

/// A PKCS#1 `RSAPrivateKey` wrapped in PKCS#8 for rcgen; the key itself is checked when the key
/// pair is built from it.
fn rsa_pkcs8_of(pkcs1_der: &[u8]) -> Result<Vec<u8>, String> {
    let info = PrivateKeyInfo {
        algorithm: AlgorithmIdentifierRef {
            oid: RSA_ENCRYPTION,
            parameters: Some(AnyRef::NULL),
        },
        private_key: pkcs1_der,
        public_key: None,
    };
    info.to_der().map_err(|e| e.to_string())
}

/// PKCS#8 as found: RSA, or EC re-encoded through SEC1 so the public key is present (the signer
/// needs it).
fn pkcs8_with_alg(der: &[u8]) -> Result<(Vec<u8>, &'static SignatureAlgorithm), String> {
    if PrivateKeyInfo::from_der(der).is_ok_and(|info| info.algorithm.oid == RSA_ENCRYPTION) {
        return Ok((der.to_vec(), &rcgen::PKCS_RSA_SHA256));
    }
    if let Ok(k) = p256::SecretKey::from_pkcs8_der(der) {
        let pkcs8 = k.to_pkcs8_der().map_err(|e| e.to_string())?;
        return Ok((pkcs8.as_bytes().to_vec(), &rcgen::PKCS_ECDSA_P256_SHA256));
    }
    if let Ok(k) = p384::SecretKey::from_pkcs8_der(der) {
        let pkcs8 = k.to_pkcs8_der().map_err(|e| e.to_string())?;
        return Ok((pkcs8.as_bytes().to_vec(), &rcgen::PKCS_ECDSA_P384_SHA384));
    }
    Err("not an RSA, P-256 or P-384 PKCS#8 key".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithms_parse_and_print_as_kubeadm_spells_them() {
        for alg in KeyAlgorithm::ALL {
            assert_eq!(alg.to_string().parse::<KeyAlgorithm>().unwrap(), alg);
            let yaml = serde_yaml::to_string(&alg).unwrap();
            assert_eq!(yaml.trim(), alg.as_str());
            assert_eq!(serde_yaml::from_str::<KeyAlgorithm>(&yaml).unwrap(), alg);
        }
        assert_eq!("".parse::<KeyAlgorithm>().unwrap(), KeyAlgorithm::Rsa2048);
        assert_eq!(KeyAlgorithm::default(), KeyAlgorithm::Rsa2048);
    }

    #[test]
    fn unknown_algorithm_lists_the_valid_ones() {
        let err = "rsa-2048".parse::<KeyAlgorithm>().unwrap_err().to_string();
        assert!(err.contains("\"rsa-2048\""), "{err}");
        for alg in KeyAlgorithm::ALL {
            assert!(err.contains(alg.as_str()), "{err}");
        }
        let err = serde_yaml::from_str::<KeyAlgorithm>("ED25519")
            .unwrap_err()
            .to_string();
        assert!(err.contains("ECDSA-P384"), "{err}");
    }

    #[test]
    fn ec_keys_are_sec1_with_curve_and_round_trip() {
        for (alg, curve_oid) in [
            (KeyAlgorithm::EcdsaP256, "1.2.840.10045.3.1.7"),
            (KeyAlgorithm::EcdsaP384, "1.3.132.0.34"),
        ] {
            let key = PrivateKey::generate(alg).unwrap();
            let block = pem::parse(key.pem()).unwrap();
            assert_eq!(block.tag(), EC_PRIVATE_KEY_LABEL);
            let sec1 = sec1::EcPrivateKey::from_der(block.contents()).unwrap();
            let curve = sec1.parameters.and_then(|p| p.named_curve()).unwrap();
            assert_eq!(curve.to_string(), curve_oid);
            assert!(sec1.public_key.is_some());
            let back = PrivateKey::from_pem(key.pem()).unwrap();
            assert_eq!(back.public_key_raw(), key.public_key_raw());
            assert!(key
                .public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        }
    }

    #[test]
    fn rsa_keys_are_pkcs1_and_round_trip() {
        let key = PrivateKey::generate(KeyAlgorithm::Rsa2048).unwrap();
        assert!(key.pem().starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
        assert!(!key.pem().contains('\r'));
        let back = PrivateKey::from_pem(key.pem()).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
        assert_eq!(key.pair().algorithm(), &rcgen::PKCS_RSA_SHA256);
    }

    #[test]
    fn pkcs8_keys_are_accepted() {
        let key = p384::SecretKey::random(&mut OsRng);
        let pem = pem_encode(
            PKCS8_PRIVATE_KEY_LABEL,
            key.to_pkcs8_der().unwrap().as_bytes(),
        );
        let parsed = PrivateKey::from_pem(&pem).unwrap();
        assert_eq!(parsed.pair().algorithm(), &rcgen::PKCS_ECDSA_P384_SHA384);
        let err =
            PrivateKey::from_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
        assert!(err.unwrap_err().contains("CERTIFICATE"));
    }

    #[test]
    fn generate_keys_returns_n_distinct_keys() {
        let keys = generate_keys(KeyAlgorithm::EcdsaP256, 5).unwrap();
        assert_eq!(keys.len(), 5);
        let mut publics: Vec<_> = keys.iter().map(|k| k.public_key_raw().to_vec()).collect();
        publics.sort();
        publics.dedup();
        assert_eq!(publics.len(), 5);
        assert!(generate_keys(KeyAlgorithm::EcdsaP256, 0)
            .unwrap()
            .is_empty());
    }
}
