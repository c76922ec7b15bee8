//! A bootstrap token as stored in the cluster: Secret `kube-system/bootstrap-token-<id>` of type
//! `bootstrap.kubernetes.io/token`, with the keys kubeadm's `BootstrapTokenToSecret` writes
//! (`token-id`, `token-secret`, `expiration` as RFC 3339 UTC, `usage-bootstrap-<usage>: "true"`,
//! `auth-extra-groups`, `description`), and the `InitConfiguration.bootstrapTokens` entries they
//! come from, with kubeadm's v1beta4 defaults (TTL 24h, usages signing and authentication, group
//! `system:bootstrappers:kubeadm:default-node-token`). Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use serde::Deserialize;

use super::token::{BootstrapToken, FormatError};
use crate::config::GoDuration;

/// `bootstrapapi.SecretTypeBootstrapToken`.
pub const TOKEN_SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// kubeadm's `NodeBootstrapTokenAuthGroup`.
pub const DEFAULT_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// `bootstrapapi.KnownTokenUsages`, kubeadm's `DefaultTokenUsages`.
pub const KNOWN_USAGES: [&str; 2] = ["signing", "authentication"];
/// kubeadm's `DefaultTokenDuration`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// kubeadm's `DefaultCertTokenDuration`: the token that owns `kubeadm-certs`.
pub const CERT_TOKEN_TTL: Duration = Duration::from_secs(2 * 3600);
const KUBE_SYSTEM: &str = "kube-system";
const ID_KEY: &str = "token-id";
const SECRET_KEY: &str = "token-secret";
const EXPIRATION_KEY: &str = "expiration";
const DESCRIPTION_KEY: &str = "description";
const GROUPS_KEY: &str = "auth-extra-groups";
const USAGE_PREFIX: &str = "usage-bootstrap-";

/// What is wrong with a token's definition or its stored Secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenSpecError {
    #[error("{field}: {source}")]
    Format {
        field: String,
        #[source]
        source: FormatError,
    },
    #[error("{field}: {detail}")]
    Invalid { field: String, detail: String },
}

/// A bootstrap token and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    pub token: BootstrapToken,
    pub description: Option<String>,
    /// `None`: never expires.
    pub expires: Option<Timestamp>,
    /// Sorted.
    pub usages: Vec<String>,
    pub groups: Vec<String>,
}

impl TokenSpec {
    /// kubeadm's default node token: signing and authentication, the default group, expiring
    /// `ttl` after `now` (a zero TTL never expires).
    pub fn for_nodes(token: BootstrapToken, ttl: Duration, now: Timestamp) -> Self {
        TokenSpec {
            token,
            description: None,
            expires: expiry(ttl, now),
            usages: sorted(KNOWN_USAGES.iter().map(|u| u.to_string()).collect()),
            groups: vec![DEFAULT_GROUP.to_string()],
        }
    }

    /// Whether the bootstrapsigner signs `cluster-info` with it.
    pub fn signs(&self) -> bool {
        self.usages.iter().any(|u| u == "signing")
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// The Secret kubeadm writes for it.
    pub fn to_secret(&self) -> Secret {
        let mut data = BTreeMap::new();
        let mut put = |key: String, value: &str| {
            data.insert(key, ByteString(value.as_bytes().to_vec()));
        };
        put(ID_KEY.into(), self.token.id());
        put(SECRET_KEY.into(), self.token.secret());
        if let Some(description) = &self.description {
            put(DESCRIPTION_KEY.into(), description);
        }
        if let Some(at) = self.expires {
            put(EXPIRATION_KEY.into(), &rfc3339(at));
        }
        for usage in &self.usages {
            put(format!("{USAGE_PREFIX}{usage}"), "true");
        }
        if !self.groups.is_empty() {
            put(GROUPS_KEY.into(), &self.groups.join(","));
        }
        Secret {
            metadata: ObjectMeta {
                name: Some(self.token.secret_name()),
                namespace: Some(KUBE_SYSTEM.into()),
                ..ObjectMeta::default()
            },
            type_: Some(TOKEN_SECRET_TYPE.into()),
            data: Some(data),
            ..Secret::default()
        }
    }

    /// The token a stored Secret describes (`kubeadm token list`). Everything in it is checked:
    /// the Secret is input from the cluster.
    pub fn from_secret(secret: &Secret) -> Result<Self, TokenSpecError> {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let data = secret.data.clone().unwrap_or_default();
        let text = |key: &str| -> Option<String> {
            data.get(key)
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        };
        let field = |key: &str| format!("Secret {KUBE_SYSTEM}/{name} {key}");
        let token = BootstrapToken::from_parts(
            &text(ID_KEY).unwrap_or_default(),
            &text(SECRET_KEY).unwrap_or_default(),
        )
        .map_err(|source| TokenSpecError::Format {
            field: field("token-id/token-secret"),
            source,
        })?;
        if token.secret_name() != name {
            return Err(TokenSpecError::Invalid {
                field: field(ID_KEY),
                detail: format!("token-id {} does not match the Secret's name", token.id()),
            });
        }
        let expires = match text(EXPIRATION_KEY) {
            None => None,
            Some(value) => {
                Some(
                    value
                        .parse::<Timestamp>()
                        .map_err(|e| TokenSpecError::Invalid {
                            field: field(EXPIRATION_KEY),
                            detail: format!("{value:?} is not an RFC 3339 time: {e}"),
                        })?,
                )
            }
        };
        let usages = data
            .iter()
            .filter(|(_, v)| v.0 == b"true")
            .filter_map(|(k, _)| k.strip_prefix(USAGE_PREFIX))
            .map(str::to_string)
            .collect();
        let groups = text(GROUPS_KEY)
            .map(|g| {
                g.split(',')
                    .filter(|g| !g.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(TokenSpec {
            token,
            description: text(DESCRIPTION_KEY),
            expires,
            usages: sorted(usages),
            groups,
        })
    }
}

/// One `InitConfiguration.bootstrapTokens` entry (v1beta4 `BootstrapToken`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct ConfiguredToken {
    token: Option<String>,
    description: Option<String>,
    ttl: Option<GoDuration>,
    expires: Option<String>,
    usages: Vec<String>,
    groups: Vec<String>,
}

/// The tokens `InitConfiguration.bootstrapTokens` defines, defaulted as kubeadm does (an entry
/// without `token` gets a generated one; no entries at all means one default token). `ttl`
/// overrides the TTL of an entry that sets neither `ttl` nor `expires` (`--token-ttl`);
/// `token` overrides the first entry's token (`--token`).
pub fn tokens_from_config(
    entries: &[serde_yaml::Value],
    token: Option<&BootstrapToken>,
    ttl: Option<Duration>,
    now: Timestamp,
) -> Result<Vec<TokenSpec>, TokenSpecError> {
    let default_entry = [serde_yaml::Value::Mapping(Default::default())];
    let entries = if entries.is_empty() {
        &default_entry[..]
    } else {
        entries
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let field = |name: &str| format!("InitConfiguration.bootstrapTokens[{i}].{name}");
            let entry: ConfiguredToken =
                serde_yaml::from_value(value.clone()).map_err(|e| TokenSpecError::Invalid {
                    field: field("*"),
                    detail: e.to_string(),
                })?;
            let token = match (i, token, &entry.token) {
                (0, Some(given), _) => given.clone(),
                (_, _, Some(text)) => text.parse().map_err(|source| TokenSpecError::Format {
                    field: field("token"),
                    source,
                })?,
                (_, _, None) => BootstrapToken::generate(),
            };
            let expires = match (&entry.expires, entry.ttl) {
                (Some(_), Some(_)) => {
                    return Err(TokenSpecError::Invalid {
                        field: field("expires"),
                        detail: "ttl and expires are mutually exclusive".into(),
                    })
                }
                (Some(at), None) => {
                    Some(
                        at.parse::<Timestamp>()
                            .map_err(|e| TokenSpecError::Invalid {
                                field: field("expires"),
                                detail: format!("{at:?} is not an RFC 3339 time: {e}"),
                            })?,
                    )
                }
                (None, Some(GoDuration(d))) => expiry(d, now),
                (None, None) => expiry(ttl.unwrap_or(DEFAULT_TTL), now),
            };
            let usages = match entry.usages.is_empty() {
                true => KNOWN_USAGES.iter().map(|u| u.to_string()).collect(),
                false => entry.usages,
            };
            if let Some(bad) = usages.iter().find(|u| !KNOWN_USAGES.contains(&u.as_str())) {
                return Err(TokenSpecError::Invalid {
                    field: field("usages"),
                    detail: format!("unknown usage {bad:?} (known: signing, authentication)"),
                });
            }
            let groups = match entry.groups.is_empty() {
                true => vec![DEFAULT_GROUP.to_string()],
                false => entry.groups,
            };
            if let Some(bad) = groups.iter().find(|g| !valid_group(g)) {
                return Err(TokenSpecError::Invalid {
                    field: field("groups"),
                    detail: format!(
                        "{bad:?} does not match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]"
                    ),
                });
            }
            Ok(TokenSpec {
                token,
                description: entry.description.filter(|d| !d.is_empty()),
                expires,
                usages: sorted(usages),
                groups,
            })
        })
        .collect()
}

/// `bootstrapapi.BootstrapGroupPattern`: `^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$`.
pub fn valid_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    let allowed = |b: u8| b.is_ascii_digit() || b.is_ascii_lowercase();
    !rest.is_empty()
        && rest.len() <= 256
        && rest.bytes().all(|b| allowed(b) || b == b':' || b == b'-')
        && rest.bytes().last().is_some_and(allowed)
}

/// `now + ttl` in whole seconds; `None` for a zero TTL (never expires).
pub fn expiry(ttl: Duration, now: Timestamp) -> Option<Timestamp> {
    if ttl.is_zero() {
        return None;
    }
    let at = now.as_second().saturating_add(ttl.as_secs() as i64);
    Some(Timestamp::from_second(at).unwrap_or(Timestamp::MAX))
}

/// Go's `time.RFC3339` in UTC: `2006-01-02T15:04:05Z`, whole seconds.
pub fn rfc3339(at: Timestamp) -> String {
    Timestamp::from_second(at.as_second())
        .unwrap_or(at)
        .to_string()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        "2026-12-01T23:00:00.75Z".parse().unwrap()
    }

    #[test]
    fn the_default_token_secret_is_kubeadms() {
        let token: BootstrapToken = "abcdef.0123456789abcdef".parse().unwrap();
        let spec = TokenSpec::for_nodes(token, DEFAULT_TTL, now());
        let value = serde_json::to_value(spec.to_secret()).unwrap();
        let b64 = |s: &str| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, s);
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
                "type": "bootstrap.kubernetes.io/token",
                "data": {
                    "token-id": b64("abcdef"),
                    "token-secret": b64("0123456789abcdef"),
                    "expiration": b64("2026-12-02T23:00:00Z"),
                    "usage-bootstrap-authentication": b64("true"),
                    "usage-bootstrap-signing": b64("true"),
                    "auth-extra-groups": b64("system:bootstrappers:kubeadm:default-node-token"),
                }
            })
        );
        assert_eq!(TokenSpec::from_secret(&spec.to_secret()).unwrap(), spec);
        assert!(spec.signs());
        assert!(!spec.is_expired(now()));
        assert!(spec.is_expired("2026-12-02T23:00:00Z".parse().unwrap()));
    }

    #[test]
    fn zero_ttl_never_expires_and_has_no_expiration_key() {
        let spec = TokenSpec::for_nodes(BootstrapToken::generate(), Duration::ZERO, now());
        assert_eq!(spec.expires, None);
        let data = spec.to_secret().data.unwrap();
        assert!(!data.contains_key("expiration"));
    }

    #[test]
    fn stored_secrets_are_checked() {
        let spec = TokenSpec::for_nodes(BootstrapToken::generate(), DEFAULT_TTL, now());
        let mut renamed = spec.to_secret();
        renamed.metadata.name = Some("bootstrap-token-zzzzzz".into());
        assert!(TokenSpec::from_secret(&renamed).is_err());
        let mut bad_time = spec.to_secret();
        bad_time
            .data
            .as_mut()
            .unwrap()
            .insert("expiration".into(), ByteString(b"tomorrow".to_vec()));
        let err = TokenSpec::from_secret(&bad_time).unwrap_err();
        assert!(err.to_string().contains("expiration"), "{err}");
        let mut bad_secret = spec.to_secret();
        bad_secret
            .data
            .as_mut()
            .unwrap()
            .insert("token-secret".into(), ByteString(b"short".to_vec()));
        assert!(TokenSpec::from_secret(&bad_secret).is_err());
    }

    #[test]
    fn configured_tokens_get_kubeadms_defaults() {
        let given: BootstrapToken = "abcdef.0123456789abcdef".parse().unwrap();
        let none =
            tokens_from_config(&[], Some(&given), Some(Duration::from_secs(3600)), now()).unwrap();
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].token, given);
        assert_eq!(
            none[0].expires,
            Some("2026-12-02T00:00:00Z".parse().unwrap())
        );
        assert_eq!(none[0].usages, ["authentication", "signing"]);
        assert_eq!(none[0].groups, [DEFAULT_GROUP]);

        let entries: Vec<serde_yaml::Value> = serde_yaml::from_str(
            "- token: ghijkl.0123456789abcdef\n  description: ci\n  ttl: 0s\n  usages: [authentication]\n  groups: [system:bootstrappers:ci]\n- {}\n",
        )
        .unwrap();
        let specs = tokens_from_config(&entries, None, None, now()).unwrap();
        assert_eq!(specs[0].token.id(), "ghijkl");
        assert_eq!(specs[0].expires, None);
        assert_eq!(specs[0].description.as_deref(), Some("ci"));
        assert!(!specs[0].signs());
        assert_eq!(specs[0].groups, ["system:bootstrappers:ci"]);
        assert_ne!(specs[1].token, specs[0].token);
        assert_eq!(
            specs[1].expires,
            Some("2026-12-02T23:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn configured_tokens_are_validated_naming_the_field() {
        for (yaml, field) in [
            ("- token: nope\n", "bootstrapTokens[0].token"),
            ("- usages: [signing, admin]\n", "bootstrapTokens[0].usages"),
            ("- groups: [system:masters]\n", "bootstrapTokens[0].groups"),
            (
                "- ttl: 1h\n  expires: \"2030-01-01T00:00:00Z\"\n",
                "bootstrapTokens[0].expires",
            ),
            ("- expires: soon\n", "bootstrapTokens[0].expires"),
            ("- tokn: abcdef.0123456789abcdef\n", "bootstrapTokens[0]"),
        ] {
            let entries: Vec<serde_yaml::Value> = serde_yaml::from_str(yaml).unwrap();
            let err = tokens_from_config(&entries, None, None, now()).unwrap_err();
            assert!(err.to_string().contains(field), "{yaml}: {err}");
        }
    }

    #[test]
    fn groups_follow_the_bootstrap_pattern() {
        assert!(valid_group(DEFAULT_GROUP));
        assert!(valid_group("system:bootstrappers:a"));
        for bad in [
            "system:bootstrappers:",
            "system:bootstrappers:a-",
            "system:masters",
            "system:bootstrappers:A",
        ] {
            assert!(!valid_group(bad), "{bad}");
        }
    }
}
