//! Where container logs live and reading them back (`boot logs`): the pod directory
//! `/var/log/pods/<namespace>_<pod>_<uid>/`, a directory per container, `<restartCount>.log`
//! plus its rotated siblings `<n>.log.<YYYYmmdd-HHMMSS>`.
//!
//! Touches: `<root>/var/log/pods/` (read only here; the relay writes).

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::cri::parse_line;

/// `<log_dir>/<namespace>_<pod full name>_<uid>`, as the kubelet names pod log directories.
pub fn pod_log_dir(log_dir: &Path, namespace: &str, pod_full_name: &str, uid: &str) -> PathBuf {
    log_dir.join(format!("{namespace}_{pod_full_name}_{uid}"))
}

/// `<pod dir>/<container>/<restartCount>.log`.
pub fn container_log_path(pod_dir: &Path, container: &str, restart_count: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{restart_count}.log"))
}

/// The rotated files of `log` (`<log>.<suffix>`), oldest first.
pub fn rotated_files(log: &Path) -> Vec<PathBuf> {
    let Some(dir) = log.parent() else {
        return Vec::new();
    };
    let prefix = format!(
        "{}.",
        log.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| {
            (
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
                e.path(),
            )
        })
        .collect();
    files.sort();
    files.into_iter().map(|(_, p)| p).collect()
}

/// The restart counts that have a log file for this container, ascending.
pub fn restart_counts(container_dir: &Path) -> Vec<u32> {
    let mut counts: Vec<u32> = fs::read_dir(container_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    counts.sort_unstable();
    counts
}

/// The content of every line of `log` and its rotated files, oldest first, partial lines joined.
pub fn read_messages(log: &Path) -> io::Result<Vec<Vec<u8>>> {
    let mut messages = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut files = rotated_files(log);
    files.push(log.to_path_buf());
    for file in files {
        let bytes = match fs::read(&file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for raw in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            collect_line(raw, &mut pending, &mut messages);
        }
    }
    if !pending.is_empty() {
        messages.push(pending);
    }
    Ok(messages)
}

fn collect_line(raw: &[u8], pending: &mut Vec<u8>, messages: &mut Vec<Vec<u8>>) {
    match parse_line(raw) {
        Some(line) if !line.full => pending.extend_from_slice(line.content),
        Some(line) => {
            pending.extend_from_slice(line.content);
            messages.push(std::mem::take(pending));
        }
        // Not CRI (written by something else): shown as it is.
        None => messages.push(raw.to_vec()),
    }
}

/// The last `n` messages.
pub fn tail(messages: Vec<Vec<u8>>, n: usize) -> Vec<Vec<u8>> {
    let skip = messages.len().saturating_sub(n);
    messages.into_iter().skip(skip).collect()
}

/// Follows a growing log file from `offset`: returns the complete new messages and the new offset.
/// A file that shrank (rotated) is read again from the start.
pub fn read_new(log: &Path, offset: u64, pending: &mut Vec<u8>) -> io::Result<(Vec<Vec<u8>>, u64)> {
    let mut file = fs::File::open(log)?;
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    // Only complete lines; an incomplete last line is read again next time.
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut messages = Vec::new();
    for raw in bytes[..complete]
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
    {
        collect_line(raw, pending, &mut messages);
    }
    Ok((messages, start + complete as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_joined_messages_across_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = container_log_path(dir.path(), "c", 0);
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        fs::write(
            log.with_file_name("0.log.20200101-000000"),
            "t stdout F old\n",
        )
        .unwrap();
        fs::write(&log, "t stdout P par\nt stdout F tial\nt stderr F new\n").unwrap();
        fs::write(log.with_file_name("3.log"), "").unwrap();
        let messages = read_messages(&log).unwrap();
        assert_eq!(
            messages,
            [b"old".to_vec(), b"partial".to_vec(), b"new".to_vec()]
        );
        assert_eq!(tail(messages, 1), [b"new".to_vec()]);
        assert_eq!(restart_counts(log.parent().unwrap()), [0, 3]);
        let mut pending = Vec::new();
        let (new, offset) = read_new(&log, 0, &mut pending).unwrap();
        assert_eq!((new.len(), offset), (2, 46));
    }
}
