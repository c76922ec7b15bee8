//! The rotation journal, `<root>/var/lib/boot/encryption-rotation.json` (0600): which key is being
//! rotated in and which step comes next, so that a rotation killed at any instant continues where
//! it stopped when `boot secrets rotate-key` runs again. It holds names only; the new key's secret
//! lives nowhere but in the encryption configuration.
//!
//! Each step first makes the file have its shape (unless it already has), then has the API server
//! load it, and only then records the next step — so a re-run repeats at most one idempotent step.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::KeyPlace;

/// Where the journal lives, under the root.
pub const JOURNAL_FILE: &str = "/var/lib/boot/encryption-rotation.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Write the new key as the second key, and load.
    AddSecond,
    /// Make it the first key, and load.
    Promote,
    /// Re-write every object through the API, then check etcd.
    Rewrite,
    /// Drop the other keys, and load.
    Retire,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    /// The key being rotated in (`key2`).
    pub new_key: String,
    /// The write key when the rotation began.
    pub old_key: String,
    pub step: Step,
    /// Unix seconds.
    pub started_at: i64,
}

impl Step {
    /// Whether the new key may stand at `place` when this step (re)starts: the step's own write
    /// may or may not have happened before an interruption; anything else means the file was
    /// changed by someone else during the rotation.
    pub fn accepts(self, place: KeyPlace) -> bool {
        matches!(
            (self, place),
            (Step::AddSecond, KeyPlace::Absent | KeyPlace::Reading)
                | (Step::Promote, KeyPlace::Reading | KeyPlace::Writing)
                | (Step::Rewrite, KeyPlace::Writing)
                | (Step::Retire, KeyPlace::Writing | KeyPlace::Alone)
        )
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::AddSecond => "adding the new key as the second key",
            Step::Promote => "making the new key the write key",
            Step::Rewrite => "re-writing every object with the new key",
            Step::Retire => "dropping the old key",
        }
    }
}

/// Longest journal read: a few hundred bytes when boot wrote it.
const MAX_JOURNAL: u64 = 64 * 1024;

/// The journal of an unfinished rotation, `Ok(None)` when there is none.
pub fn read(path: &Path) -> Result<Option<Journal>, String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
        Ok(_) => {}
    }
    let bytes = super::read_bounded(path, MAX_JOURNAL)?;
    let journal: Journal =
        serde_json::from_slice(&bytes).map_err(|e| format!("not a rotation journal: {e}"))?;
    if !super::config::valid_key_name(&journal.new_key)
        || !super::config::valid_key_name(&journal.old_key)
    {
        return Err("a key name in it is not letters, digits, '-' and '_'".into());
    }
    Ok(Some(journal))
}

pub fn write(path: &Path, journal: &Journal) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(journal).map_err(|e| e.to_string())?;
    crate::host::write_all(&[crate::host::RenderedFile::new(path, 0o600, bytes)])
        .map_err(|e| e.to_string())
}

pub fn remove(path: &Path) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_step_accepts_the_shapes_an_interruption_can_leave() {
        use KeyPlace::*;
        let accepted = |step: Step| {
            [Absent, Reading, Writing, Alone]
                .into_iter()
                .filter(|p| step.accepts(*p))
                .collect::<Vec<_>>()
        };
        assert_eq!(accepted(Step::AddSecond), [Absent, Reading]);
        assert_eq!(accepted(Step::Promote), [Reading, Writing]);
        assert_eq!(accepted(Step::Rewrite), [Writing]);
        assert_eq!(accepted(Step::Retire), [Writing, Alone]);
    }

    #[test]
    fn a_journal_round_trips_and_a_hostile_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.json");
        assert_eq!(read(&path), Ok(None));
        let journal = Journal {
            new_key: "key2".into(),
            old_key: "key1".into(),
            step: Step::Rewrite,
            started_at: 5,
        };
        write(&path, &journal).unwrap();
        assert_eq!(read(&path), Ok(Some(journal)));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );

        std::fs::write(
            &path,
            r#"{"newKey":"../x","oldKey":"key1","step":"retire","startedAt":1}"#,
        )
        .unwrap();
        assert!(read(&path).unwrap_err().contains("key name"));
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        assert!(read(&path).is_err(), "a symlink is not followed");
        remove(&path).unwrap();
        remove(&path).unwrap();
    }
}
