//! The snapshot directory: boot's names (`<kind>-<node>-<UTC time>.db`), `ls` and `prune`.
//! Only regular files are listed or removed (no link is followed), and only files boot named
//! are ever pruned: a user's own file in the directory is shown and left alone.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::SnapshotError;

/// Why a snapshot was taken: the first word of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Kind {
    /// `boot etcd snapshot save` without a file name.
    OnDemand,
    /// The agent's schedule (`BootConfiguration.etcdSnapshots`).
    Scheduled,
    /// `boot upgrade apply`'s backup before it changes anything.
    PreUpgrade,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OnDemand => "on-demand",
            Kind::Scheduled => "scheduled",
            Kind::PreUpgrade => "pre-upgrade",
        }
    }

    const ALL: [Kind; 3] = [Kind::OnDemand, Kind::Scheduled, Kind::PreUpgrade];
}

/// A name boot gives a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotName {
    pub kind: Kind,
    pub node: String,
    /// Unix seconds, UTC.
    pub taken: i64,
}

impl SnapshotName {
    pub fn new(kind: Kind, node: &str, taken: SystemTime) -> SnapshotName {
        SnapshotName {
            kind,
            node: node.to_string(),
            taken: taken
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
        }
    }

    /// `scheduled-cp1-20260314T120000Z.db`.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}.db",
            self.kind.as_str(),
            self.node,
            stamp(self.taken)
        )
    }

    /// The name of a file boot named, `None` for any other.
    pub fn parse(file_name: &str) -> Option<SnapshotName> {
        let stem = file_name.strip_suffix(".db")?;
        let kind = Kind::ALL
            .into_iter()
            .find(|k| stem.starts_with(&format!("{}-", k.as_str())))?;
        let rest = &stem[kind.as_str().len() + 1..];
        let (node, stamp) = rest.rsplit_once('-')?;
        if node.is_empty() || !crate::config::is_dns_name(node) {
            return None;
        }
        Some(SnapshotName {
            kind,
            node: node.to_string(),
            taken: parse_stamp(stamp)?,
        })
    }
}

/// `20260314T120000Z`: the UTC time in a name.
pub fn stamp(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => "19700101T000000Z".into(),
    }
}

fn parse_stamp(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let date = time::Date::from_calendar_date(
        digits(0..4)? as i32,
        time::Month::try_from(digits(4..6)? as u8).ok()?,
        digits(6..8)? as u8,
    )
    .ok()?;
    let time = time::Time::from_hms(
        digits(9..11)? as u8,
        digits(11..13)? as u8,
        digits(13..15)? as u8,
    )
    .ok()?;
    Some(
        time::PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// One `*.db` file of the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    /// `None` for a file boot did not name.
    pub name: Option<SnapshotName>,
    pub size: u64,
    /// From the name, else the file's modification time (unix seconds).
    pub taken: i64,
    /// `Some(None)`: an empty store; `None`: not readable as a database.
    pub revision: Option<Option<u64>>,
}

/// The snapshots in `dir`, oldest first; an absent directory has none.
pub fn list(dir: &Path) -> Result<Vec<Entry>, SnapshotError> {
    let entries = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SnapshotError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
        Ok(entries) => entries,
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if !file_name.ends_with(".db") || file_name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let name = SnapshotName::parse(&file_name);
        let modified = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .unwrap_or(Duration::ZERO)
            .as_secs() as i64;
        out.push(Entry {
            taken: name.as_ref().map(|n| n.taken).unwrap_or(modified),
            revision: super::file::revision(&path),
            size: meta.len(),
            name,
            path,
        });
    }
    out.sort_by(|a, b| a.taken.cmp(&b.taken).then(a.path.cmp(&b.path)));
    Ok(out)
}

/// Which of `entries` a prune keeping the newest `keep` (of `kinds`, all when empty) removes:
/// only files boot named. Pure.
pub fn prune_plan(entries: &[Entry], keep: usize, kinds: &[Kind]) -> Vec<PathBuf> {
    let mut candidates: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            e.name
                .as_ref()
                .is_some_and(|n| kinds.is_empty() || kinds.contains(&n.kind))
        })
        .collect();
    candidates.sort_by(|a, b| b.taken.cmp(&a.taken).then(b.path.cmp(&a.path)));
    candidates
        .into_iter()
        .skip(keep)
        .map(|e| e.path.clone())
        .collect()
}

/// Removes the files [`prune_plan`] names; returns them.
pub fn prune(dir: &Path, keep: usize, kinds: &[Kind]) -> Result<Vec<PathBuf>, SnapshotError> {
    let doomed = prune_plan(&list(dir)?, keep, kinds);
    for path in &doomed {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(SnapshotError::Io {
                    path: path.clone(),
                    source: e,
                })
            }
            _ => {}
        }
    }
    Ok(doomed)
}

/// `2026-03-14T12:00:00Z`.
pub fn display_time(unix: i64) -> String {
    crate::pki::format_time(unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_not_boots() {
        let name = SnapshotName::new(
            Kind::Scheduled,
            "cp-1.example",
            UNIX_EPOCH + Duration::from_secs(1_773_489_600),
        );
        assert_eq!(
            name.file_name(),
            "scheduled-cp-1.example-20260314T120000Z.db"
        );
        assert_eq!(SnapshotName::parse(&name.file_name()), Some(name));
        let upgrade = "pre-upgrade-node-20260101T000001Z.db";
        assert_eq!(SnapshotName::parse(upgrade).unwrap().kind, Kind::PreUpgrade);
        for other in [
            "mine.db",
            "scheduled-node-20261301T000000Z.db",
            "scheduled-node-2026031T120000Z.db",
            "scheduled--20260314T120000Z.db",
            "scheduled-node-20260314T120000Z.db.part",
            "weekly-node-20260314T120000Z.db",
            "scheduled-UPPER-20260314T120000Z.db",
        ] {
            assert_eq!(SnapshotName::parse(other), None, "{other}");
        }
    }

    fn entry(name: &str, taken: i64) -> Entry {
        Entry {
            path: PathBuf::from(format!("/s/{name}")),
            name: SnapshotName::parse(name),
            size: 1,
            taken,
            revision: None,
        }
    }

    #[test]
    fn prune_keeps_the_newest_and_never_a_users_file() {
        let entries = vec![
            entry("mine.db", 1),
            entry("scheduled-n-20260101T000000Z.db", 1_767_225_600),
            entry("on-demand-n-20260102T000000Z.db", 1_767_312_000),
            entry("scheduled-n-20260103T000000Z.db", 1_767_398_400),
            entry("scheduled-n-20260104T000000Z.db", 1_767_484_800),
        ];
        assert_eq!(
            prune_plan(&entries, 2, &[]),
            [
                PathBuf::from("/s/on-demand-n-20260102T000000Z.db"),
                PathBuf::from("/s/scheduled-n-20260101T000000Z.db"),
            ]
        );
        assert_eq!(
            prune_plan(&entries, 2, &[Kind::Scheduled]),
            [PathBuf::from("/s/scheduled-n-20260101T000000Z.db")]
        );
        assert!(prune_plan(&entries, 10, &[]).is_empty());
        assert_eq!(prune_plan(&entries, 0, &[]).len(), 4, "mine.db stays");
    }

    #[test]
    fn listing_skips_links_and_other_files_and_prune_removes_only_boots() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "scheduled-n-20260101T000000Z.db",
            "scheduled-n-20260102T000000Z.db",
            "mine.db",
            "notes.txt",
        ] {
            std::fs::write(d.join(name), b"x").unwrap();
        }
        std::os::unix::fs::symlink("/etc/hostname", d.join("scheduled-n-20260103T000000Z.db"))
            .unwrap();
        let listed: Vec<String> = list(d)
            .unwrap()
            .iter()
            .map(|e| e.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(listed.len(), 3, "{listed:?}");
        assert!(listed.contains(&"mine.db".to_string()));
        assert_eq!(list(d).unwrap()[0].revision, None, "not a database");
        let removed = prune(d, 1, &[]).unwrap();
        assert_eq!(removed, [d.join("scheduled-n-20260101T000000Z.db")]);
        assert!(d.join("mine.db").exists());
        assert!(d.join("scheduled-n-20260103T000000Z.db").is_symlink());
        assert!(list(&d.join("absent")).unwrap().is_empty());
    }
}
