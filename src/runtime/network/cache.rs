//! The result cache, as libcni keeps it in `/var/lib/cni/results` (reference §12): after a
//! successful ADD, the configuration list, the arguments and the result of one attachment, so that
//! CHECK and DEL get their `prevResult` and DEL uses the very configuration ADD used even when the
//! conf dir changed since. One file per attachment, `<network>-<containerID>-<ifname>`, written
//! atomically with mode 0600.
//!
//! Touches: `<root>/var/lib/boot/cni/results/`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::conflist::{check_name, NetworkConfigList};
use crate::host::RenderedFile;

/// The format of boot's cache files: libcni's `cniCacheV1` fields, with the configuration list
/// kept as JSON rather than base64 bytes.
pub const CACHE_KIND: &str = "bootCniCacheV1";
const MAX_CACHE_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedAttachment {
    pub kind: String,
    pub container_id: String,
    pub network_name: String,
    pub if_name: String,
    /// The namespace ADD was given.
    pub netns: PathBuf,
    pub cni_args: String,
    pub capability_args: Map<String, Value>,
    /// The configuration list ADD ran ([`NetworkConfigList::to_json`]).
    pub config: Value,
    pub result: Value,
}

impl CachedAttachment {
    pub fn file_name(network: &str, container_id: &str, ifname: &str) -> String {
        format!("{network}-{container_id}-{ifname}")
    }

    /// The configuration list, checked again: the file is input like any other.
    pub fn config_list(&self) -> Result<NetworkConfigList, String> {
        NetworkConfigList::from_json(&self.config)
    }

    fn validate(&self) -> Result<(), String> {
        if self.kind != CACHE_KIND {
            return Err(format!("kind {:?} is not {CACHE_KIND}", self.kind));
        }
        for (field, value) in [
            ("containerId", &self.container_id),
            ("networkName", &self.network_name),
            ("ifName", &self.if_name),
        ] {
            check_name(value).map_err(|e| format!("{field} {value:?}: {e}"))?;
        }
        let list = self.config_list().map_err(|e| format!("config: {e}"))?;
        if list.name != self.network_name {
            return Err("config: its name is not networkName".into());
        }
        Ok(())
    }
}

/// Where the cache files live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultCache {
    pub dir: PathBuf,
}

impl ResultCache {
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.dir
            .join(CachedAttachment::file_name(network, container_id, ifname))
    }

    pub fn save(&self, entry: &CachedAttachment) -> Result<(), String> {
        let path = self.path(&entry.network_name, &entry.container_id, &entry.if_name);
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| e.to_string())?;
        crate::host::write_all(&[RenderedFile {
            path,
            mode: 0o600,
            bytes,
        }])
        .map_err(|e| e.to_string())
    }

    pub fn remove(&self, entry: &CachedAttachment) {
        let _ =
            fs::remove_file(self.path(&entry.network_name, &entry.container_id, &entry.if_name));
    }

    /// Every valid entry, with the files that are not (named, so reset can report them).
    pub fn load_all(&self) -> (Vec<CachedAttachment>, Vec<(PathBuf, String)>) {
        let mut entries = Vec::new();
        let mut bad = Vec::new();
        let mut paths: Vec<PathBuf> = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| !is_temporary(p))
            .collect();
        paths.sort();
        for path in paths {
            match load(&path) {
                Ok(entry) => entries.push(entry),
                Err(problem) => bad.push((path, problem)),
            }
        }
        (entries, bad)
    }

    /// The entries of one sandbox, whatever network they were made on.
    pub fn for_container(&self, container_id: &str) -> Vec<CachedAttachment> {
        self.load_all()
            .0
            .into_iter()
            .filter(|e| e.container_id == container_id)
            .collect()
    }
}

fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

fn load(path: &Path) -> Result<CachedAttachment, String> {
    let bytes = crate::host::read_bounded(path, MAX_CACHE_BYTES, crate::host::Links::Refuse)
        .map_err(|e| e.to_string())?;
    let entry: CachedAttachment = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
    entry.validate()?;
    let expected =
        CachedAttachment::file_name(&entry.network_name, &entry.container_id, &entry.if_name);
    if path.file_name().and_then(|n| n.to_str()) != Some(expected.as_str()) {
        return Err(format!("its content belongs in {expected}"));
    }
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(id: &str) -> CachedAttachment {
        CachedAttachment {
            kind: CACHE_KIND.into(),
            container_id: id.into(),
            network_name: "net".into(),
            if_name: "eth0".into(),
            netns: "/run/boot/netns/x".into(),
            cni_args: "IgnoreUnknown=1".into(),
            capability_args: Map::new(),
            config: json!({"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge"}]}),
            result: json!({"ips": [{"address": "10.88.0.2/16"}]}),
        }
    }

    #[test]
    fn entries_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache {
            dir: dir.path().join("results"),
        };
        cache.save(&entry("aaa")).unwrap();
        cache.save(&entry("bbb")).unwrap();
        let path = cache.path("net", "aaa", "eth0");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // A file whose name does not match its content, and one that does not parse.
        fs::copy(&path, cache.dir.join("net-ccc-eth0")).unwrap();
        fs::write(cache.dir.join("junk"), "{").unwrap();
        let (entries, bad) = cache.load_all();
        assert_eq!(entries, [entry("aaa"), entry("bbb")]);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert_eq!(cache.for_container("bbb"), [entry("bbb")]);
        cache.remove(&entry("aaa"));
        assert!(!path.exists());
    }

    #[test]
    fn names_that_could_be_paths_are_refused() {
        let mut bad = entry("aaa");
        bad.container_id = "../../etc".into();
        assert!(bad.validate().unwrap_err().contains("containerId"));
    }
}
