//! What the agent records about the pods it runs, so that a restarted agent adopts the running
//! processes instead of starting duplicates (design §5 ★): per pod, its sandbox and, per
//! container, the restart count and the process (pid + start time from `/proc`). Written
//! atomically on every start and exit.
//!
//! Touches: `<root>/var/lib/boot/agent/<pod uid>.json`.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use crate::runtime::{ContainerHandle, Sandbox};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub uid: String,
    pub full_name: String,
    pub manifest: PathBuf,
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
}

fn record_path(dir: &Path, uid: &str) -> PathBuf {
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
        match fs::read(&path)
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

pub fn remove(dir: &Path, uid: &str) {
    let _ = fs::remove_file(record_path(dir, uid));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let record = PodRecord {
            uid: "u1".into(),
            full_name: "p-n".into(),
            manifest: "/m/p.yaml".into(),
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
        let (records, problems) = load_all(dir.path());
        assert_eq!(records, [record]);
        assert_eq!(problems.len(), 1);
        remove(dir.path(), "u1");
        assert!(load_all(dir.path()).0.is_empty());
    }
}
