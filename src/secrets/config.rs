//! The encryption configuration as `boot secrets rotate-key` changes it: parsed from untrusted
//! YAML, checked, and moved through the three shapes of a safe rotation. Pure: no file access.
//!
//! A rotation touches every `resources[]` entry whose first (write) provider is a local-key
//! provider (`secretbox`, `aescbc`, `aesgcm`); the other providers of an entry (`identity` for
//! objects written before encryption was on, a KMS) are kept as they are. The three shapes, each
//! loaded by every API server before the next is written:
//!
//! 1. [`add_second`]: the new key second — readable everywhere, still not used for writes;
//! 2. [`promote`]: the new key first — every write uses it, the old keys still read old data;
//! 3. [`retire`]: only the new key — once nothing in etcd is encrypted with another.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_yaml::{Mapping, Value};

/// The local-key providers, whose keys boot can rotate; their etcd prefix is
/// `k8s:enc:<provider>:v1:<key name>:`.
const KEY_PROVIDERS: [&str; 3] = ["secretbox", "aescbc", "aesgcm"];
/// The resources boot can re-write through the API.
pub const REWRITABLE: [&str; 2] = ["secrets", "configmaps"];

/// Why a configuration cannot be rotated; the caller adds the file's path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("not YAML: {0}")]
    Yaml(String),
    #[error("kind is not EncryptionConfiguration")]
    Kind,
    #[error("{field}: {why}")]
    Field { field: String, why: String },
    #[error(
        "no resources[] entry has secretbox, aescbc or aesgcm as its first provider: there is no \
         local key to rotate"
    )]
    NothingToRotate,
    #[error("resources[{index}] encrypts {resource:?}, which boot cannot re-write (only secrets and configmaps)")]
    Unsupported { index: usize, resource: String },
    #[error("a key named {0:?} already exists")]
    NameTaken(String),
}

/// A parsed configuration and where its rotatable providers are.
#[derive(Debug, Clone, PartialEq)]
pub struct EncryptionConfig {
    doc: Value,
    /// `(resources index, provider kind)` of each rotated entry.
    rotated: Vec<(usize, String)>,
}

/// Where a key stands in the rotated providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPlace {
    Absent,
    /// Present, not first: reads only.
    Reading,
    /// First beside others: writes use it, the others still read.
    Writing,
    /// The only key.
    Alone,
}

impl EncryptionConfig {
    pub fn parse(text: &str) -> Result<EncryptionConfig, ConfigError> {
        let doc: Value =
            serde_yaml::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
        if doc.get("kind").and_then(Value::as_str) != Some("EncryptionConfiguration") {
            return Err(ConfigError::Kind);
        }
        let entries = doc
            .get("resources")
            .and_then(Value::as_sequence)
            .ok_or_else(|| field("resources", "missing or not a list"))?;
        let mut rotated = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let at = |rest: &str| format!("resources[{index}].{rest}");
            let first = entry
                .get("providers")
                .and_then(Value::as_sequence)
                .and_then(|p| p.first())
                .and_then(Value::as_mapping)
                .ok_or_else(|| field(&at("providers"), "missing or empty"))?;
            let Some(kind) = first
                .keys()
                .filter_map(Value::as_str)
                .find(|k| KEY_PROVIDERS.contains(k))
            else {
                continue;
            };
            for resource in entry
                .get("resources")
                .and_then(Value::as_sequence)
                .ok_or_else(|| field(&at("resources"), "missing or not a list"))?
            {
                let resource = resource.as_str().unwrap_or_default();
                if !REWRITABLE.contains(&resource) {
                    return Err(ConfigError::Unsupported {
                        index,
                        resource: resource.to_string(),
                    });
                }
            }
            let keys = first
                .get(kind)
                .and_then(|p| p.get("keys"))
                .and_then(Value::as_sequence)
                .filter(|k| !k.is_empty())
                .ok_or_else(|| {
                    field(
                        &at(&format!("providers[0].{kind}.keys")),
                        "missing or empty",
                    )
                })?;
            for (k, key) in keys.iter().enumerate() {
                let name = key.get("name").and_then(Value::as_str).unwrap_or_default();
                if !valid_key_name(name) {
                    return Err(field(
                        &at(&format!("providers[0].{kind}.keys[{k}].name")),
                        "missing, or not letters, digits, '-' and '_'",
                    ));
                }
            }
            rotated.push((index, kind.to_string()));
        }
        if rotated.is_empty() {
            return Err(ConfigError::NothingToRotate);
        }
        Ok(EncryptionConfig { doc, rotated })
    }

    pub fn to_yaml(&self) -> String {
        let body = serde_yaml::to_string(&self.doc).unwrap_or_default();
        format!(
            "# Encryption at rest for the API server (--encryption-provider-config); keys rotated by \
             `boot secrets rotate-key`.\n# Losing this file loses the data it encrypts. Keep a copy \
             somewhere safe.\n{body}"
        )
    }

    /// The resources the rotated entries encrypt (`secrets`, `configmaps`), each once.
    pub fn resources(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (index, _) in &self.rotated {
            for r in self.doc["resources"][*index]["resources"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !out.iter().any(|o| o == r) {
                    out.push(r.to_string());
                }
            }
        }
        out
    }

    /// The etcd value prefix of data written with `key` by each rotated provider.
    pub fn prefixes(&self, key: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .rotated
            .iter()
            .map(|(_, kind)| format!("k8s:enc:{kind}:v1:{key}:"))
            .collect();
        out.dedup();
        out
    }

    /// Every key name of the rotated providers.
    pub fn key_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for i in 0..self.rotated.len() {
            for name in self.keys(i).iter().filter_map(|k| k["name"].as_str()) {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
        names
    }

    /// The write key of the first rotated provider.
    pub fn write_key(&self) -> String {
        self.keys(0)[0]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// `key<N>` for the smallest N above every `key<M>` in use (`key2` after boot's `key1`).
    pub fn next_key_name(&self) -> String {
        let highest = self
            .key_names()
            .iter()
            .filter_map(|n| n.strip_prefix("key")?.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        format!("key{}", highest.saturating_add(1))
    }

    /// Where `name` stands; `None` when the rotated providers disagree (someone edited the file).
    pub fn place(&self, name: &str) -> Option<KeyPlace> {
        let places: Vec<KeyPlace> = (0..self.rotated.len())
            .map(|i| {
                let keys = self.keys(i);
                match keys.iter().position(|k| k["name"].as_str() == Some(name)) {
                    None => KeyPlace::Absent,
                    Some(0) if keys.len() == 1 => KeyPlace::Alone,
                    Some(0) => KeyPlace::Writing,
                    Some(_) => KeyPlace::Reading,
                }
            })
            .collect();
        places.windows(2).all(|w| w[0] == w[1]).then(|| places[0])
    }

    fn keys(&self, i: usize) -> &[Value] {
        let (index, kind) = &self.rotated[i];
        self.doc["resources"][*index]["providers"][0][kind.as_str()]["keys"]
            .as_sequence()
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    fn keys_mut(&mut self, i: usize) -> &mut Vec<Value> {
        let (index, kind) = self.rotated[i].clone();
        let keys = &mut self.doc["resources"][index]["providers"][0][kind.as_str()]["keys"];
        if !keys.is_sequence() {
            *keys = Value::Sequence(Vec::new());
        }
        keys.as_sequence_mut().expect("made a sequence above")
    }
}

/// Step 1: `name` with `secret` (32 bytes) as the second key of every rotated provider.
pub fn add_second(
    config: &EncryptionConfig,
    name: &str,
    secret: &[u8; 32],
) -> Result<EncryptionConfig, ConfigError> {
    if config.key_names().iter().any(|n| n == name) {
        return Err(ConfigError::NameTaken(name.to_string()));
    }
    let mut next = config.clone();
    let mut key = Mapping::new();
    key.insert("name".into(), name.into());
    key.insert("secret".into(), BASE64.encode(secret).into());
    for i in 0..next.rotated.len() {
        next.keys_mut(i).insert(1, Value::Mapping(key.clone()));
    }
    Ok(next)
}

/// Step 2: `name` moved first, the other keys after it in their order.
pub fn promote(config: &EncryptionConfig, name: &str) -> EncryptionConfig {
    let mut next = config.clone();
    for i in 0..next.rotated.len() {
        let keys = next.keys_mut(i);
        if let Some(at) = keys.iter().position(|k| k["name"].as_str() == Some(name)) {
            let key = keys.remove(at);
            keys.insert(0, key);
        }
    }
    next
}

/// Step 3: every key but `name` dropped.
pub fn retire(config: &EncryptionConfig, name: &str) -> EncryptionConfig {
    let mut next = config.clone();
    for i in 0..next.rotated.len() {
        next.keys_mut(i)
            .retain(|k| k["name"].as_str() == Some(name));
    }
    next
}

fn field(field: &str, why: &str) -> ConfigError {
    ConfigError::Field {
        field: field.to_string(),
        why: why.to_string(),
    }
}

/// Key names become part of etcd values and log lines: keep them plain.
pub(crate) fn valid_key_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT_DEFAULT: &str = "apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources:
  - secrets
  - configmaps
  providers:
  - secretbox:
      keys:
      - name: key1
        secret: c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlYyE=
  - identity: {}
";

    fn names(config: &EncryptionConfig) -> Vec<String> {
        config
            .keys(0)
            .iter()
            .map(|k| k["name"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_rotation_goes_second_then_first_then_alone() {
        let start = EncryptionConfig::parse(BOOT_DEFAULT).unwrap();
        assert_eq!(start.write_key(), "key1");
        let new = start.next_key_name();
        assert_eq!(new, "key2");
        assert_eq!(start.place(&new), Some(KeyPlace::Absent));

        let added = add_second(&start, &new, &[7; 32]).unwrap();
        assert_eq!(names(&added), ["key1", "key2"]);
        assert_eq!(added.place(&new), Some(KeyPlace::Reading));
        assert_eq!(added.write_key(), "key1", "writes still use the old key");

        let promoted = promote(&added, &new);
        assert_eq!(names(&promoted), ["key2", "key1"]);
        assert_eq!(promoted.place(&new), Some(KeyPlace::Writing));
        assert_eq!(promote(&promoted, &new), promoted, "idempotent");

        let retired = retire(&promoted, &new);
        assert_eq!(names(&retired), ["key2"]);
        assert_eq!(retired.place(&new), Some(KeyPlace::Alone));
        assert_eq!(retired.prefixes(&new), ["k8s:enc:secretbox:v1:key2:"]);
        assert_eq!(retired.resources(), ["secrets", "configmaps"]);

        // What is written parses back to the same shape, identity reader kept, secret intact.
        let again = EncryptionConfig::parse(&retired.to_yaml()).unwrap();
        assert_eq!(again, retired);
        assert_eq!(
            again.doc["resources"][0]["providers"][1]["identity"],
            Value::Mapping(Mapping::new())
        );
        let secret = again.keys(0)[0]["secret"].as_str().unwrap();
        assert_eq!(BASE64.decode(secret).unwrap(), [7; 32]);
    }

    #[test]
    fn every_rotated_entry_moves_together_and_others_stay() {
        let text = "kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc: {keys: [{name: key1, secret: a}, {name: key4, secret: b}]}
- resources: [events]
  providers:
  - identity: {}
- resources: [configmaps]
  providers:
  - secretbox: {keys: [{name: key1, secret: c}]}
";
        let config = EncryptionConfig::parse(text).unwrap();
        assert_eq!(config.next_key_name(), "key5");
        assert_eq!(
            config.place("key4"),
            None,
            "only in one entry: inconsistent"
        );
        let added = add_second(&config, "key5", &[1; 32]).unwrap();
        assert_eq!(added.place("key5"), Some(KeyPlace::Reading));
        let retired = retire(&promote(&added, "key5"), "key5");
        assert_eq!(retired.place("key5"), Some(KeyPlace::Alone));
        assert_eq!(retired.doc["resources"][1], config.doc["resources"][1]);
        assert_eq!(
            retired.prefixes("key5"),
            ["k8s:enc:aescbc:v1:key5:", "k8s:enc:secretbox:v1:key5:"]
        );
        assert_eq!(
            add_second(&config, "key4", &[1; 32]).unwrap_err(),
            ConfigError::NameTaken("key4".into())
        );
    }

    #[test]
    fn configurations_boot_cannot_rotate_are_refused() {
        let err = |text: &str| EncryptionConfig::parse(text).unwrap_err();
        assert_eq!(err("kind: Secret\n"), ConfigError::Kind);
        assert!(matches!(err("[: nope"), ConfigError::Yaml(_)));
        assert_eq!(
            err("kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: [{identity: {}}]\n"),
            ConfigError::NothingToRotate
        );
        assert!(matches!(
            err("kind: EncryptionConfiguration\nresources:\n- resources: ['*.*']\n  providers: [{secretbox: {keys: [{name: k, secret: s}]}}]\n"),
            ConfigError::Unsupported { index: 0, .. }
        ));
        let bad_name = err("kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: [{secretbox: {keys: [{name: '../x', secret: s}]}}]\n");
        assert!(bad_name.to_string().contains("keys[0].name"), "{bad_name}");
        let no_keys = err("kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: [{secretbox: {keys: []}}]\n");
        assert!(no_keys.to_string().contains("secretbox.keys"), "{no_keys}");
    }
}
