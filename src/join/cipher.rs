//! kubeadm's `cryptoutil.EncryptBytes`/`DecryptBytes` for the `kubeadm-certs` Secret: AES-256-GCM
//! with the certificate key, a random 12-byte nonce, stored as `nonce ‖ ciphertext ‖ tag` with no
//! associated data. Pure.

use rand::rngs::OsRng;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use super::token::CertificateKey;

/// Why a value could not be decrypted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the value is shorter than the {NONCE_LEN}-byte nonce")]
    TooShort,
    #[error("message authentication failed (a wrong certificate key, or altered data)")]
    Authentication,
}

fn cipher(key: &CertificateKey) -> LessSafeKey {
    // A 32-byte key is always valid for AES-256.
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key.bytes()).expect("AES-256 takes 32 bytes"))
}

/// `nonce ‖ AES-256-GCM(plain)`.
pub fn encrypt(plain: &[u8], key: &CertificateKey) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let mut sealed = plain.to_vec();
    cipher(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::empty(),
            &mut sealed,
        )
        .expect("AES-GCM seals any length the Secret can hold");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    out
}

/// The plain text of an [`encrypt`]ed value.
pub fn decrypt(data: &[u8], key: &CertificateKey) -> Result<Vec<u8>, DecryptError> {
    if data.len() < NONCE_LEN {
        return Err(DecryptError::TooShort);
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| DecryptError::TooShort)?;
    let mut buffer = sealed.to_vec();
    let plain = cipher(key)
        .open_in_place(nonce, Aad::empty(), &mut buffer)
        .map_err(|_| DecryptError::Authentication)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_a_random_nonce_in_front() {
        let key = CertificateKey::generate();
        let plain = b"-----BEGIN CERTIFICATE-----\n...";
        let a = encrypt(plain, &key);
        let b = encrypt(plain, &key);
        assert_eq!(a.len(), NONCE_LEN + plain.len() + 16);
        assert_ne!(a, b, "each value has its own nonce");
        assert_eq!(decrypt(&a, &key).unwrap(), plain);
        assert_eq!(decrypt(&encrypt(b"", &key), &key).unwrap(), b"");
    }

    #[test]
    fn a_wrong_key_or_altered_data_fails() {
        let key = CertificateKey::generate();
        let mut sealed = encrypt(b"secret key material", &key);
        assert_eq!(
            decrypt(&sealed, &CertificateKey::generate()),
            Err(DecryptError::Authentication)
        );
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(decrypt(&sealed, &key), Err(DecryptError::Authentication));
        assert_eq!(decrypt(&sealed[..5], &key), Err(DecryptError::TooShort));
    }

    /// A value sealed elsewhere in kubeadm's layout (nonce first): made with Python's
    /// `cryptography` AESGCM, key `00 01 … 1f`, nonce `64 65 … 6f`.
    #[test]
    fn opens_a_value_sealed_elsewhere() {
        let key: CertificateKey = FIXTURE_KEY.parse().unwrap();
        let data =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, FIXTURE_SEALED)
                .unwrap();
        assert_eq!(decrypt(&data, &key).unwrap(), b"kubeadm-certs");
    }

    const FIXTURE_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const FIXTURE_SEALED: &str = "ZGVmZ2hpamtsbW5vI268AxiNO7NdBy2cqTKdZ73clDbuo/7hl++f0lk=";
}
