//! What the agent records about the pods it runs, so that a restarted agent adopts the running
//! processes instead of starting duplicates (design §5 ★): per pod, the pod itself (so that the
//! last good version of a manifest that broke while the agent was down keeps running), its
//! config hash, its sandbox and, per container, the restart count and the process (pid + start
//! time from `/proc`). Written atomically on every start and exit. Records are read back as
//! untrusted input: the identifiers are validated types, the pod is validated again as a
//! manifest, reads are bounded, and the runtime checks every handle before it acts on it.
//!
//! Touches: `<root>/var/lib/boot/agent/<pod uid>.json`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::runtime::names::{PodName, PodUid};
use crate::runtime::{ContainerHandle, Sandbox};

/// A record is a few kilobytes plus the pod; a manifest is at most 10 MB.
const MAX_RECORD_BYTES: u64 = 12 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub uid: PodUid,
    /// The pod's [`config_hash`](super::source::StaticPod::config_hash): a record only belongs
    /// to the pod with the same content.
    #[serde(default)]
    pub config_hash: String,
    pub full_name: PodName,
    pub manifest: PathBuf,
    /// The pod as it was parsed from the manifest.
    #[serde(default)]
    pub pod: Option<k8s_openapi::api::core::v1::Pod>,
    pub sandbox: Option<Sandbox>,
    pub containers: Vec<ContainerRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    pub name: String,
    pub init: bool,
    pub restart_count: u32,
    /// The running process, if any.
    pub process: Option<ContainerHandle>,
    /// An init container that completed.
    pub completed: bool,
}

impl PodRecord {
    pub fn container(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.iter().find(|c| c.name == name)
    }

    /// Whether this record describes `pod` (same UID and content). A record written before config
    /// hashes were recorded has none: its UID was then always the content hash.
    pub fn belongs_to(&self, pod: &super::source::StaticPod) -> bool {
        self.uid == pod.uid
            && (self.config_hash == pod.config_hash
                || (self.config_hash.is_empty() && self.uid.as_str() == pod.config_hash))
    }

    /// The recorded pod, validated again as a manifest, if it is the very pod recorded (same
    /// UID and config hash on this node).
    pub fn static_pod(&self, node_name: &str) -> Option<super::source::StaticPod> {
        let bytes = serde_json::to_vec(self.pod.as_ref()?).ok()?;
        let pod = super::source::StaticPod::parse(&self.manifest, &bytes, node_name).ok()?;
        (pod.uid == self.uid && pod.config_hash == self.config_hash).then_some(pod)
    }
}

fn record_path(dir: &Path, uid: &PodUid) -> PathBuf {
    dir.join(format!("{uid}.json"))
}

/// Every readable record; unreadable ones are skipped (and reported), never fatal.
pub fn load_all(dir: &Path) -> (Vec<PodRecord>, Vec<String>) {
    let mut records = Vec::new();
    let mut problems = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json")
            || entry.file_name().to_string_lossy().starts_with('.')
        {
            continue;
        }
        match crate::host::read_bounded(&path, MAX_RECORD_BYTES, crate::host::Links::Refuse)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(record) => records.push(record),
            Err(e) => problems.push(format!(
                "{}: unreadable agent record, ignored: {e}",
                path.display()
            )),
        }
    }
    (records, problems)
}

/// Writes a record atomically (dot-named temporary file, then rename) but without fsync: records
/// describe running processes, which do not survive a reboot either, and a sync per container
/// start would put disk latency into every restart.
pub fn save(dir: &Path, record: &PodRecord) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| e.to_string())?;
    let path = record_path(dir, &record.uid);
    let tmp = dir.join(format!(".{}.json.tmp", record.uid));
    let write = || -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| format!("{}: {e}", path.display()))
}

pub fn remove(dir: &Path, uid: &PodUid) {
    let _ = fs::remove_file(record_path(dir, uid));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_belongs_to_the_pod_of_the_same_content_also_from_an_older_agent() {
        let text =
            "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c}]}\n";
        let pod =
            crate::agent::source::StaticPod::parse(Path::new("/m/p.yaml"), text.as_bytes(), "n")
                .unwrap();
        let mut record = PodRecord {
            uid: pod.uid.clone(),
            config_hash: pod.config_hash.clone(),
            full_name: pod.full_name.clone(),
            manifest: pod.path.clone(),
            pod: Some(pod.pod.clone()),
            sandbox: None,
            containers: vec![],
        };
        assert!(record.belongs_to(&pod));
        assert_eq!(record.static_pod("n").as_ref(), Some(&pod));
        assert_eq!(
            record.static_pod("other-node"),
            None,
            "another node's pod is another pod"
        );
        record.config_hash = String::new(); // written by an agent that recorded no hash
        assert!(record.belongs_to(&pod));
        record.config_hash = "edited".into();
        assert!(!record.belongs_to(&pod));
    }

    #[test]
    fn round_trips_and_skips_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let record = PodRecord {
            uid: PodUid::new("u1").unwrap(),
            config_hash: "h".into(),
            full_name: PodName::new("p-n").unwrap(),
            manifest: "/m/p.yaml".into(),
            pod: None,
            sandbox: None,
            containers: vec![ContainerRecord {
                name: "c".into(),
                init: false,
                restart_count: 3,
                process: None,
                completed: false,
            }],
        };
        save(dir.path(), &record).unwrap();
        fs::write(dir.path().join("bad.json"), "{").unwrap();
        let tampered = serde_json::to_string(&record)
            .unwrap()
            .replace("\"u1\"", "\"../../etc\"");
        fs::write(dir.path().join("tampered.json"), tampered).unwrap();
        let (records, problems) = load_all(dir.path());
        assert_eq!(records, std::slice::from_ref(&record));
        assert_eq!(problems.len(), 2, "{problems:?}");
        remove(dir.path(), &record.uid);
        assert!(load_all(dir.path()).0.is_empty());
    }
}
