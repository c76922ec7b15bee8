//! `/containerLogs/{namespace}/{pod}/{container}`: the query as `v1.PodLogOptions` (reference
//! §18) and the container's CRI log files read back, the same files and parser `boot logs` uses
//! (`runtime::logs`): `previous` picks the run before the last, `timestamps` keeps each line's
//! time, `sinceSeconds`/`sinceTime`, `tailLines` and `limitBytes` cut, `follow` keeps reading.
//!
//! Touches (read only): `<root>/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log*`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::runtime::logs::cri::{parse_line, rfc3339_nano};
use crate::runtime::logs::files::{container_log_path, restart_counts, rotated_files};

/// How often `follow` looks for new lines (as `boot logs -f`).
pub const FOLLOW_POLL: Duration = Duration::from_millis(250);
/// One read of a growing file at most this much at a time.
const FOLLOW_CHUNK: u64 = 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub previous: bool,
    pub timestamps: bool,
    /// Only lines at or after this time (RFC 3339, whole seconds compared).
    pub since: Option<String>,
    pub tail_lines: Option<usize>,
    pub limit_bytes: Option<u64>,
}

/// A query that does not parse (400) or options that are invalid (422).
#[derive(Debug, PartialEq, Eq)]
pub enum QueryError {
    Bad(String),
    Invalid(String),
}

fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn boolean(name: &str, value: &str) -> Result<bool, QueryError> {
    match value {
        "" | "true" | "1" | "True" => Ok(true),
        "false" | "0" | "False" => Ok(false),
        other => Err(QueryError::Bad(format!(
            "{name}={other:?} is not a boolean"
        ))),
    }
}

fn number(name: &str, value: &str) -> Result<i64, QueryError> {
    value
        .parse()
        .map_err(|_| QueryError::Bad(format!("{name}={value:?} is not a number")))
}

impl LogOptions {
    /// Parses the query string; `now` turns `sinceSeconds` into a time.
    pub fn parse(query: &str, now: SystemTime) -> Result<LogOptions, QueryError> {
        let mut options = LogOptions::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match name {
                "follow" => options.follow = boolean(name, &value)?,
                "previous" => options.previous = boolean(name, &value)?,
                "timestamps" => options.timestamps = boolean(name, &value)?,
                "sinceSeconds" => {
                    let seconds = number(name, &value)?;
                    if seconds < 1 {
                        return Err(QueryError::Invalid(
                            "sinceSeconds must be greater than 0".into(),
                        ));
                    }
                    let since = now
                        .checked_sub(Duration::from_secs(seconds as u64))
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    options.since = Some(rfc3339_nano(since));
                }
                "sinceTime" => {
                    if value.len() < 20 || value.as_bytes()[10] != b'T' {
                        return Err(QueryError::Bad(format!(
                            "sinceTime={value:?} is not RFC 3339"
                        )));
                    }
                    options.since = Some(value);
                }
                "tailLines" | "tail" if value == "all" => options.tail_lines = None,
                "tailLines" | "tail" => {
                    let lines = number(name, &value)?;
                    if lines < 0 {
                        return Err(QueryError::Invalid("tailLines must be 0 or more".into()));
                    }
                    options.tail_lines = Some(lines as usize);
                }
                "limitBytes" => {
                    let limit = number(name, &value)?;
                    if limit < 1 {
                        return Err(QueryError::Invalid(
                            "limitBytes must be greater than 0".into(),
                        ));
                    }
                    options.limit_bytes = Some(limit as u64);
                }
                // Known PodLogOptions fields boot does not act on, and anything else, are ignored
                // as the kubelet's decoder ignores unknown parameters.
                _ => {}
            }
        }
        if options.follow && options.previous {
            options.follow = false;
        }
        Ok(options)
    }
}

/// The log file of the container's current (or, with `previous`, last but one) run.
pub fn log_file(container_dir: &Path, previous: bool) -> Option<PathBuf> {
    let counts = restart_counts(container_dir);
    let index = if previous {
        counts.len().checked_sub(2)?
    } else {
        counts.len().checked_sub(1)?
    };
    let pod_dir = container_dir.parent()?;
    let container = container_dir.file_name()?.to_str()?;
    Some(container_log_path(pod_dir, container, counts[index]))
}

/// Turns CRI lines into output lines, joining partial ones, keeping the options' time filter.
#[derive(Debug, Default)]
pub struct LineReader {
    pending: Vec<u8>,
    pending_time: Option<String>,
}

impl LineReader {
    /// Appends the output lines of complete CRI lines in `bytes` to `out`.
    pub fn feed(&mut self, bytes: &[u8], options: &LogOptions, out: &mut Vec<Vec<u8>>) {
        for raw in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let Some(line) = parse_line(raw) else {
                // Not CRI: shown as it is.
                out.push([raw, b"\n"].concat());
                continue;
            };
            if self.pending_time.is_none() {
                self.pending_time = Some(line.timestamp.to_string());
            }
            self.pending.extend_from_slice(line.content);
            if !line.full {
                continue;
            }
            let time = self.pending_time.take().unwrap_or_default();
            let content = std::mem::take(&mut self.pending);
            let keep = options.since.as_deref().is_none_or(|since| {
                time.get(..19).unwrap_or(&time) >= since.get(..19).unwrap_or(since)
            });
            if keep {
                let mut text = Vec::with_capacity(content.len() + 40);
                if options.timestamps {
                    text.extend_from_slice(time.as_bytes());
                    text.push(b' ');
                }
                text.extend_from_slice(&content);
                text.push(b'\n');
                out.push(text);
            }
        }
    }
}

/// Everything already in `log` (rotated files first) as output lines, after tail; returns the
/// lines and the offset in `log` where following goes on.
pub fn read_all(log: &Path, options: &LogOptions) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
    let mut reader = LineReader::default();
    let mut lines = Vec::new();
    let mut offset = 0;
    let mut files = rotated_files(log);
    files.push(log.to_path_buf());
    for file in &files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        reader.feed(&bytes[..complete], options, &mut lines);
        if file == log {
            offset = complete as u64;
        }
    }
    if let Some(n) = options.tail_lines {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok((lines, offset))
}

/// The complete lines appended to `log` since `offset`, and the new offset (from 0 if the file
/// shrank, i.e. was rotated).
pub fn read_more(
    log: &Path,
    offset: u64,
    reader: &mut LineReader,
    options: &LogOptions,
) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
    let mut file = std::fs::File::open(log)?;
    let len = file.metadata()?.len();
    let start = if len < offset { 0 } else { offset };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(FOLLOW_CHUNK).read_to_end(&mut bytes)?;
    let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut lines = Vec::new();
    reader.feed(&bytes[..complete], options, &mut lines);
    Ok((lines, start + complete as u64))
}

/// Counts down `limitBytes`: how much of `line` may still go out.
#[derive(Debug)]
pub struct Limit(pub Option<u64>);

impl Limit {
    pub fn take<'a>(&mut self, line: &'a [u8]) -> &'a [u8] {
        match &mut self.0 {
            None => line,
            Some(left) => {
                let n = (*left).min(line.len() as u64);
                *left -= n;
                &line[..n as usize]
            }
        }
    }

    pub fn exhausted(&self) -> bool {
        self.0 == Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pod_log_options() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let o = LogOptions::parse(
            "follow=true&tailLines=10&timestamps=1&limitBytes=5&sinceSeconds=10",
            now,
        )
        .unwrap();
        assert!(o.follow && o.timestamps && !o.previous);
        assert_eq!((o.tail_lines, o.limit_bytes), (Some(10), Some(5)));
        assert_eq!(o.since.as_deref(), Some("1970-01-01T00:16:30Z"));
        assert_eq!(
            LogOptions::parse("sinceTime=2024-01-02T03%3A04%3A05Z", now)
                .unwrap()
                .since
                .as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            LogOptions::parse("tailLines=all", now).unwrap().tail_lines,
            None
        );
        assert!(matches!(
            LogOptions::parse("follow=maybe", now),
            Err(QueryError::Bad(_))
        ));
        assert!(matches!(
            LogOptions::parse("limitBytes=0", now),
            Err(QueryError::Invalid(_))
        ));
        assert!(matches!(
            LogOptions::parse("tailLines=x", now),
            Err(QueryError::Bad(_))
        ));
    }

    #[test]
    fn reads_tails_filters_and_follows() {
        let dir = tempfile::tempdir().unwrap();
        let container = dir.path().join("c");
        std::fs::create_dir_all(&container).unwrap();
        std::fs::write(
            container.join("0.log"),
            "2024-01-01T00:00:00Z stdout F first run\n",
        )
        .unwrap();
        let log = container.join("1.log");
        std::fs::write(
            &log,
            "2024-01-01T00:00:01Z stdout F one\n2024-01-01T00:00:02Z stderr P tw\n2024-01-01T00:00:02Z stderr F o\n2024-01-01T00:00:03Z stdout F thr",
        )
        .unwrap();
        assert_eq!(log_file(&container, false).unwrap(), log);
        assert_eq!(log_file(&container, true).unwrap(), container.join("0.log"));
        let (lines, offset) = read_all(&log, &LogOptions::default()).unwrap();
        assert_eq!(lines, [b"one\n".to_vec(), b"two\n".to_vec()]);
        let options = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(
            read_all(&log, &options).unwrap().0,
            [b"2024-01-01T00:00:02Z two\n".to_vec()]
        );
        let since = LogOptions {
            since: Some("2024-01-01T00:00:02Z".into()),
            ..Default::default()
        };
        assert_eq!(read_all(&log, &since).unwrap().0, [b"two\n".to_vec()]);
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        std::io::Write::write_all(&mut file, b"ee\n").unwrap();
        let mut reader = LineReader::default();
        let (more, next) = read_more(&log, offset, &mut reader, &LogOptions::default()).unwrap();
        assert_eq!(more, [b"three\n".to_vec()]);
        assert!(next > offset);
        let mut limit = Limit(Some(4));
        assert_eq!(limit.take(b"abc\n"), b"abc\n");
        assert!(limit.exhausted());
        assert_eq!(limit.take(b"more"), b"");
    }
}
