//! The detached JWS that signs `cluster-info` for one bootstrap token, as the controller
//! manager's bootstrapsigner computes it (`k8s.io/cluster-bootstrap/token/jws`): HS256 with the
//! token secret as the key, protected header `{"alg":"HS256","kid":"<token id>"}` (go-jose writes
//! the header map with sorted keys), compact serialization with the payload left out
//! (`<header>..<signature>`). A joining node recomputes it from the kubeconfig it fetched and the
//! token it was given: a match proves the ConfigMap came from someone holding the token. Pure.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;

use super::token::BootstrapToken;

/// `bootstrapapi.JWSSignatureKeyPrefix`: the `cluster-info` key holding token `<id>`'s signature
/// is `jws-kubeconfig-<id>`.
pub const JWS_KEY_PREFIX: &str = "jws-kubeconfig-";

/// The `cluster-info` data key for `token`'s signature.
pub fn signature_key(token: &BootstrapToken) -> String {
    format!("{JWS_KEY_PREFIX}{}", token.id())
}

/// `{"alg":"HS256","kid":"<id>"}`, base64url without padding.
fn protected_header(token: &BootstrapToken) -> String {
    URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, token.id()))
}

/// The detached signature of `content` with `token`.
pub fn detached_signature(content: &str, token: &BootstrapToken) -> String {
    let header = protected_header(token);
    let payload = URL_SAFE_NO_PAD.encode(content);
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.secret().as_bytes());
    let tag = hmac::sign(&key, format!("{header}.{payload}").as_bytes());
    format!("{header}..{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Whether `signature` is `token`'s detached signature of `content`: the protected header
/// must be the one [`detached_signature`] writes and the tag is checked in constant time by
/// `ring::hmac::verify` (as `jws.DetachedTokenIsValid` recomputes and compares).
pub fn is_valid(signature: &str, content: &str, token: &BootstrapToken) -> bool {
    let Some((header, tag)) = signature.split_once("..") else {
        return false;
    };
    let expected_header = protected_header(token);
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else {
        return false;
    };
    let payload = URL_SAFE_NO_PAD.encode(content);
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.secret().as_bytes());
    header == expected_header
        && hmac::verify(&key, format!("{header}.{payload}").as_bytes(), &tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTENT: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: Q0E=\n    server: https://10.0.0.1:6443\n  name: \"\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\nusers: null\n";

    /// Computed independently with Python's `hmac` and `base64`:
    /// `b64(hmac.new(b"0123456789abcdef", (hdr + "." + b64(CONTENT)).encode(), sha256))`.
    const EXPECTED: &str =
        "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..e4FYNivLzi8714KFCU7ptUPcCrJxQSMKt-ZyPOu5I7I";

    #[test]
    fn signature_matches_an_independently_computed_vector() {
        let token: BootstrapToken = "abcdef.0123456789abcdef".parse().unwrap();
        assert_eq!(detached_signature(CONTENT, &token), EXPECTED);
        assert_eq!(signature_key(&token), "jws-kubeconfig-abcdef");
        assert!(is_valid(EXPECTED, CONTENT, &token));
    }

    #[test]
    fn another_secret_content_or_signature_does_not_verify() {
        let token: BootstrapToken = "abcdef.0123456789abcdef".parse().unwrap();
        let other: BootstrapToken = "abcdef.0123456789abcdeg".parse().unwrap();
        assert!(!is_valid(EXPECTED, CONTENT, &other));
        assert!(!is_valid(
            EXPECTED,
            &CONTENT.replace("10.0.0.1", "10.0.0.2"),
            &token
        ));
        assert!(!is_valid(&EXPECTED[..EXPECTED.len() - 1], CONTENT, &token));
        assert!(!is_valid("", CONTENT, &token));
    }
}
