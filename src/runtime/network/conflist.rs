//! Finding and reading the CNI network configuration, as containerd's CRI (go-cni
//! `loadFromConfDir`) does for the kubelet: the files of the conf dir ending in `.conflist`,
//! `.conf` or `.json`, sorted bytewise; the first one wins; a `.conf`/`.json` is a single plugin
//! wrapped into a list. Everything read here is untrusted: bounded reads, and names and plugin
//! types are checked before they become file names or executables.
//!
//! Touches: reads the conf dir (`/etc/cni/net.d`).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// A conflist is a few hundred bytes; anything over this is not one.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The CNI versions whose result format (`ips[]` with `address` and `interface`) boot reads.
/// Debian 12's plugins (1.1.1) answer up to 1.0.0; 1.1.0 is the current spec.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A network configuration list, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    /// Each plugin's object as written (unknown keys pass through to the plugin); `type` checked.
    pub plugins: Vec<Map<String, Value>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("cannot read {path}: {problem}")]
    Read { path: PathBuf, problem: String },
    #[error("{path}: {problem}")]
    Invalid { path: PathBuf, problem: String },
}

impl NetworkConfigList {
    /// The plugin types in order, for messages.
    pub fn plugin_types(&self) -> Vec<&str> {
        self.plugins.iter().filter_map(plugin_type).collect()
    }

    /// The list as one JSON object (what the cache keeps for DEL).
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "cniVersion": self.cni_version,
            "name": self.name,
            "disableCheck": self.disable_check,
            "plugins": self.plugins,
        })
    }

    /// Reads a list back from [`NetworkConfigList::to_json`] or a `.conflist` file's content.
    pub fn from_json(value: &Value) -> Result<NetworkConfigList, String> {
        let object = value.as_object().ok_or("not a JSON object")?;
        let name = string_field(object, "name")?;
        check_name(&name).map_err(|e| format!("name {name:?}: {e}"))?;
        let cni_version = pick_version(object)?;
        let disable_check = match object.get("disableCheck") {
            None => false,
            Some(Value::Bool(b)) => *b,
            // libcni also accepts the strings "true"/"false".
            Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
            Some(_) => return Err("disableCheck: not a boolean".into()),
        };
        let plugins = object
            .get("plugins")
            .and_then(Value::as_array)
            .ok_or("plugins: missing or not a list")?;
        if plugins.is_empty() {
            return Err("plugins: the list is empty".into());
        }
        let plugins = plugins
            .iter()
            .enumerate()
            .map(|(i, p)| checked_plugin(p).map_err(|e| format!("plugins[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check,
            plugins,
        })
    }

    /// A single-plugin `.conf`: the plugin is the whole object; name and version are its own.
    fn from_single(value: &Value) -> Result<NetworkConfigList, String> {
        let object = value.as_object().ok_or("not a JSON object")?;
        let name = string_field(object, "name")?;
        check_name(&name).map_err(|e| format!("name {name:?}: {e}"))?;
        let cni_version = pick_version(object)?;
        Ok(NetworkConfigList {
            name,
            cni_version,
            disable_check: false,
            plugins: vec![checked_plugin(value)?],
        })
    }
}

/// The configuration files of `dir` in the order containerd considers them.
pub fn candidate_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "conflist" | "conf" | "json"))
        })
        .filter(|p| fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    // go's sort.Strings: bytewise.
    files.sort_by(|a, b| {
        a.as_os_str()
            .as_encoded_bytes()
            .cmp(b.as_os_str().as_encoded_bytes())
    });
    files
}

/// The first usable configuration in `dir`, or `None` when there is none. A `.conf` without a
/// `type` is skipped (as go-cni does); any other bad file is an error, not silently passed over.
pub fn load_first(dir: &Path) -> Result<Option<(PathBuf, NetworkConfigList)>, ConfigError> {
    for path in candidate_files(dir) {
        let value = read_json(&path)?;
        let invalid = |problem: String| ConfigError::Invalid {
            path: path.clone(),
            problem,
        };
        let is_list = path.extension().is_some_and(|e| e == "conflist");
        let list = if is_list {
            NetworkConfigList::from_json(&value).map_err(invalid)?
        } else {
            if value.get("type").is_none() {
                continue;
            }
            NetworkConfigList::from_single(&value).map_err(invalid)?
        };
        return Ok(Some((path, list)));
    }
    Ok(None)
}

fn read_json(path: &Path) -> Result<Value, ConfigError> {
    let read = |problem: String| ConfigError::Read {
        path: path.to_path_buf(),
        problem,
    };
    // The administrator's network configuration: links are followed, as the kubelet's libcni does.
    let bytes = crate::host::read_bounded(path, MAX_CONFIG_BYTES, crate::host::Links::Follow)
        .map_err(|e| read(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        problem: format!("not valid JSON: {e}"),
    })
}

fn string_field(object: &Map<String, Value>, key: &str) -> Result<String, String> {
    match object.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None => Err(format!("{key}: missing")),
        Some(_) => Err(format!("{key}: not a string")),
    }
}

/// `cniVersion`, or the highest of `cniVersions` that boot supports (spec 1.1: the runtime picks).
fn pick_version(object: &Map<String, Value>) -> Result<String, String> {
    if let Some(Value::Array(versions)) = object.get("cniVersions") {
        let best = versions
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|v| SUPPORTED_VERSIONS.iter().position(|s| *s == v))
            .max();
        if let Some(index) = best {
            return Ok(SUPPORTED_VERSIONS[index].to_string());
        }
    }
    let version = string_field(object, "cniVersion")?;
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(format!(
            "cniVersion {version:?} is not supported (boot speaks {})",
            SUPPORTED_VERSIONS.join(", ")
        ));
    }
    Ok(version)
}

fn checked_plugin(value: &Value) -> Result<Map<String, Value>, String> {
    let object = value.as_object().ok_or("not a JSON object")?;
    let kind = string_field(object, "type")?;
    check_plugin_type(&kind).map_err(|e| format!("type {kind:?}: {e}"))?;
    Ok(object.clone())
}

pub fn plugin_type(plugin: &Map<String, Value>) -> Option<&str> {
    plugin.get("type").and_then(Value::as_str)
}

/// The spec's rule for network names and container IDs: an alphanumeric first, then
/// `[A-Za-z0-9_.-]`. Such a name is also safe as part of a file name.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return Err("must start with a letter or digit"),
    }
    if name.len() > 253 {
        return Err("longer than 253 characters");
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err("may only hold letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

/// A plugin type names an executable in the CNI bin dirs: a plain file name, never a path.
fn check_plugin_type(kind: &str) -> Result<(), &'static str> {
    check_name(kind).map_err(|_| "must be a plain executable name (letters, digits, '_', '.', '-')")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_file_in_bytewise_order_wins_and_a_conf_is_wrapped() {
        let dir = tempfile::tempdir().unwrap();
        let conf = json!({"cniVersion": "0.4.0", "name": "single", "type": "bridge"});
        std::fs::write(dir.path().join("20-single.conf"), conf.to_string()).unwrap();
        std::fs::write(dir.path().join("10-notype.conf"), r#"{"name":"x"}"#).unwrap();
        std::fs::write(dir.path().join("05-ignored.txt"), "not a config").unwrap();
        let (path, list) = load_first(dir.path()).unwrap().unwrap();
        assert_eq!(path, dir.path().join("20-single.conf"));
        assert_eq!(list.name, "single");
        assert_eq!(list.plugin_types(), ["bridge"]);
        let list_file = json!({"cniVersion": "1.0.0", "name": "net",
            "plugins": [{"type": "bridge", "custom": 1}, {"type": "portmap"}]});
        std::fs::write(dir.path().join("15-net.conflist"), list_file.to_string()).unwrap();
        let (path, list) = load_first(dir.path()).unwrap().unwrap();
        assert_eq!(path, dir.path().join("15-net.conflist"));
        assert_eq!(list.plugins[0]["custom"], 1, "unknown keys pass through");
        assert_eq!(NetworkConfigList::from_json(&list.to_json()).unwrap(), list);
    }

    #[test]
    fn an_empty_dir_has_no_configuration() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_first(dir.path()).unwrap(), None);
        assert_eq!(load_first(&dir.path().join("missing")).unwrap(), None);
    }

    #[test]
    fn bad_files_are_errors_that_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("10-bad.conflist");
        let cases = [
            ("{", "not valid JSON"),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#,
                "plugins: the list is empty",
            ),
            (
                r#"{"cniVersion":"0.2.0","name":"n","plugins":[{"type":"b"}]}"#,
                "cniVersion \"0.2.0\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"../x","plugins":[{"type":"b"}]}"#,
                "name \"../x\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"/bin/sh"}]}"#,
                "plugins[0]: type \"/bin/sh\"",
            ),
            (
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":".."}]}"#,
                "plugins[0]: type",
            ),
        ];
        for (content, expected) in cases {
            std::fs::write(&path, content).unwrap();
            let error = load_first(dir.path()).unwrap_err().to_string();
            assert!(error.contains(expected), "{content}: {error}");
            assert!(error.contains("10-bad.conflist"), "{error}");
        }
    }

    #[test]
    fn the_highest_supported_of_cni_versions_is_picked() {
        let list = json!({"cniVersions": ["0.4.0", "1.0.0", "9.9.9"], "name": "n",
            "plugins": [{"type": "bridge"}]});
        assert_eq!(
            NetworkConfigList::from_json(&list).unwrap().cni_version,
            "1.0.0"
        );
    }

    #[test]
    fn oversized_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = format!(r#"{{"name":"{}"}}"#, "a".repeat(MAX_CONFIG_BYTES as usize));
        std::fs::write(dir.path().join("a.conflist"), big).unwrap();
        assert!(load_first(dir.path())
            .unwrap_err()
            .to_string()
            .contains("larger than"));
    }
}
