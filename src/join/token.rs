//! The three secrets a join is made of, parsed and validated once: the bootstrap token
//! (`[a-z0-9]{6}.[a-z0-9]{16}`, kubeadm's `bootstraputil`), the CA public-key pin
//! (`sha256:<hex>` of the CA certificate's SubjectPublicKeyInfo, kubeadm's `pubkeypin`) and the
//! certificate key (32 random bytes, hex, that encrypt the `kubeadm-certs` Secret). Pure: no
//! host paths, no network. `Debug` never shows a secret part.

use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use rand::Rng;
use sha2::{Digest, Sha256};

/// kubeadm's `validBootstrapTokenChars`.
const TOKEN_CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
/// `bootstrapapi.BootstrapTokenIDBytes` and `BootstrapTokenSecretBytes`.
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
/// `bootstrapapi.BootstrapTokenSecretPrefix`: the Secret holding token `<id>` is
/// `kube-system/bootstrap-token-<id>`.
pub const TOKEN_SECRET_PREFIX: &str = "bootstrap-token-";
/// kubeadm's `CertificateKeySize`: an AES-256 key.
pub const CERTIFICATE_KEY_SIZE: usize = 32;

/// Why a token, hash or key given by a user (or read from the cluster) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("the bootstrap token does not match the format [a-z0-9]{{6}}.[a-z0-9]{{16}}")]
    Token,
    #[error("the bootstrap token ID {0:?} does not match [a-z0-9]{{6}}")]
    TokenId(String),
    #[error("the CA certificate hash {0:?} is not \"sha256:\" followed by 64 hex digits")]
    CaCertHash(String),
    #[error("the certificate key is not 64 hex digits (a 32-byte AES key)")]
    CertificateKey,
    #[error("the CA certificate cannot be parsed: {0}")]
    Certificate(String),
}

impl FormatError {
    pub fn hint(&self) -> &'static str {
        match self {
            FormatError::Token | FormatError::TokenId(_) => {
                "`boot token create` prints a valid token; `boot token list` shows the existing ones"
            }
            FormatError::CaCertHash(_) => {
                "use the hash `boot init` or `boot token create --print-join-command` printed"
            }
            FormatError::CertificateKey => {
                "`boot init phase upload-certs --upload-certs` prints a new key"
            }
            FormatError::Certificate(_) => "the file must hold a PEM certificate",
        }
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_lowercase()
}

fn random_token_chars(len: usize) -> String {
    let mut rng = OsRng;
    (0..len)
        .map(|_| TOKEN_CHARS[rng.gen_range(0..TOKEN_CHARS.len())] as char)
        .collect()
}

/// A bootstrap token `<id>.<secret>`: the ID is public (it names the Secret and the JWS key),
/// the secret authenticates.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

impl BootstrapToken {
    /// A new random token, as `kubeadm token generate` (each character uniform over
    /// `[a-z0-9]`, from the OS's random source).
    pub fn generate() -> Self {
        BootstrapToken {
            id: random_token_chars(ID_LEN),
            secret: random_token_chars(SECRET_LEN),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// `kube-system/<this>` holds the token.
    pub fn secret_name(&self) -> String {
        format!("{TOKEN_SECRET_PREFIX}{}", self.id)
    }

    /// The token from its Secret's `token-id` and `token-secret` values.
    pub fn from_parts(id: &str, secret: &str) -> Result<Self, FormatError> {
        format!("{id}.{secret}").parse()
    }
}

impl FromStr for BootstrapToken {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        let (id, secret) = s.split_once('.').ok_or(FormatError::Token)?;
        let valid = |part: &str, len: usize| part.len() == len && part.bytes().all(is_token_char);
        if !valid(id, ID_LEN) || !valid(secret, SECRET_LEN) {
            return Err(FormatError::Token);
        }
        Ok(BootstrapToken {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

/// A token ID alone, or the ID of a whole token (what `kubeadm token delete` accepts).
pub fn parse_token_id(s: &str) -> Result<String, FormatError> {
    if let Ok(token) = s.parse::<BootstrapToken>() {
        return Ok(token.id);
    }
    if s.len() == ID_LEN && s.bytes().all(is_token_char) {
        return Ok(s.to_string());
    }
    Err(FormatError::TokenId(s.to_string()))
}

/// The pin of a CA: SHA-256 of its certificate's DER SubjectPublicKeyInfo, written
/// `sha256:<64 hex>` (kubeadm's `pubkeypin.Hash`; `openssl x509 -pubkey | openssl pkey -pubin
/// -outform der | sha256sum` computes the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaCertHash([u8; 32]);

impl CaCertHash {
    /// The pin of the certificate `der`.
    pub fn of(ca_cert_der: &[u8]) -> Result<Self, FormatError> {
        let (_, cert) = x509_parser::parse_x509_certificate(ca_cert_der)
            .map_err(|e| FormatError::Certificate(e.to_string()))?;
        Ok(CaCertHash(
            Sha256::digest(cert.tbs_certificate.subject_pki.raw).into(),
        ))
    }

    /// The pin of the first certificate in `pem` (`ca.crt`).
    pub fn of_pem(pem: &[u8]) -> Result<Self, FormatError> {
        let block = pem::parse(pem).map_err(|e| FormatError::Certificate(e.to_string()))?;
        CaCertHash::of(block.contents())
    }
}

impl FromStr for CaCertHash {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        let bad = || FormatError::CaCertHash(s.to_string());
        // pubkeypin.Allow: `format:value`, the format compared case-insensitively.
        let (format, value) = s.split_once(':').ok_or_else(bad)?;
        if !format.eq_ignore_ascii_case("sha256") {
            return Err(bad());
        }
        let bytes = decode_hex(value).ok_or_else(bad)?;
        Ok(CaCertHash(bytes.try_into().map_err(|_| bad())?))
    }
}

impl fmt::Display for CaCertHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", encode_hex(&self.0))
    }
}

/// The AES-256 key that encrypts the `kubeadm-certs` Secret's values, written as 64 hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct CertificateKey([u8; CERTIFICATE_KEY_SIZE]);

impl CertificateKey {
    /// A new random key (kubeadm's `CreateCertificateKey`).
    pub fn generate() -> Self {
        let mut key = [0u8; CERTIFICATE_KEY_SIZE];
        OsRng.fill(&mut key);
        CertificateKey(key)
    }

    pub fn bytes(&self) -> &[u8; CERTIFICATE_KEY_SIZE] {
        &self.0
    }
}

impl FromStr for CertificateKey {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, FormatError> {
        let bytes = decode_hex(s).ok_or(FormatError::CertificateKey)?;
        Ok(CertificateKey(
            bytes.try_into().map_err(|_| FormatError::CertificateKey)?,
        ))
    }
}

impl fmt::Display for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&encode_hex(&self.0))
    }
}

impl fmt::Debug for CertificateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertificateKey(<redacted>)")
    }
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex digits (either case) to bytes; `None` for odd lengths or other characters.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_print_and_refuse_bad_forms() {
        let token: BootstrapToken = "abcdef.0123456789abcdef".parse().unwrap();
        assert_eq!(token.id(), "abcdef");
        assert_eq!(token.secret(), "0123456789abcdef");
        assert_eq!(token.to_string(), "abcdef.0123456789abcdef");
        assert_eq!(token.secret_name(), "bootstrap-token-abcdef");
        assert!(!format!("{token:?}").contains("0123456789abcdef"));
        for bad in [
            "",
            "abcdef",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdefg",
            "ABCDEF.0123456789abcdef",
            "abcde.0123456789abcdefa",
            "abcdef:0123456789abcdef",
            "abc-ef.0123456789abcdef",
            "abcdef.0123456789abcdef\n",
            "abcdef.0123456789abcdef.x",
        ] {
            assert_eq!(
                bad.parse::<BootstrapToken>(),
                Err(FormatError::Token),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn generated_tokens_are_valid_and_differ() {
        let a = BootstrapToken::generate();
        let b = BootstrapToken::generate();
        assert_eq!(a.to_string().parse::<BootstrapToken>().unwrap(), a);
        assert_ne!(a, b);
        assert_eq!(a.to_string().len(), 23);
    }

    #[test]
    fn token_ids_come_alone_or_from_a_token() {
        assert_eq!(parse_token_id("abcdef").unwrap(), "abcdef");
        assert_eq!(parse_token_id("abcdef.0123456789abcdef").unwrap(), "abcdef");
        assert!(parse_token_id("abcdeF").is_err());
        assert!(parse_token_id("../../x").is_err());
    }

    #[test]
    fn ca_cert_hash_is_the_sha256_of_the_spki() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let hash = CaCertHash::of(cert.der()).unwrap();
        // The SPKI DER is what rcgen exports as the public key.
        let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
        let expected: [u8; 32] = Sha256::digest(spki).into();
        assert_eq!(hash, CaCertHash(expected));
        assert_eq!(CaCertHash::of_pem(cert.pem().as_bytes()).unwrap(), hash);
        let text = hash.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 71, "{text}");
        assert_eq!(text.parse::<CaCertHash>().unwrap(), hash);
        assert_eq!(
            text.to_uppercase()
                .replace("SHA256", "sha256")
                .parse::<CaCertHash>()
                .unwrap(),
            hash
        );
    }

    #[test]
    fn ca_cert_hash_refuses_other_forms() {
        let hex = "7c2e69131a36ae2a042a339b33381c6d0d43887e2de83720eff5359e26aec866";
        assert!(format!("sha256:{hex}").parse::<CaCertHash>().is_ok());
        for bad in [
            hex.to_string(),
            format!("md5:{hex}"),
            format!("sha256:{}", &hex[..62]),
            format!("sha256:{hex}00"),
            format!("sha256:{}zz", &hex[..62]),
            "sha256:".to_string(),
        ] {
            assert!(bad.parse::<CaCertHash>().is_err(), "{bad}");
        }
        assert!(CaCertHash::of(b"not a certificate").is_err());
    }

    #[test]
    fn certificate_keys_are_64_hex_digits() {
        let key = CertificateKey::generate();
        let text = key.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<CertificateKey>().unwrap(), key);
        assert_ne!(CertificateKey::generate(), key);
        assert!(!format!("{key:?}").contains(&text));
        for bad in [
            "",
            "abc",
            &text[..62],
            &format!("{text}00"),
            &text.replace(|c: char| c.is_ascii_digit(), "g"),
        ] {
            if bad.len() == 64 && bad.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue; // no digit was replaced
            }
            assert!(bad.parse::<CertificateKey>().is_err(), "{bad}");
        }
    }
}
