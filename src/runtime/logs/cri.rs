//! The CRI log line format (pure): `2016-10-06T00:17:09.669794202Z stdout F message`. Lines longer
//! than [`MAX_LINE`] are split into partial (`P`) lines followed by a final (`F`) one, as
//! containerd does.

use std::time::{SystemTime, UNIX_EPOCH};

/// containerd's default `max_container_log_line_size` (16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    pub timestamp: &'a str,
    pub stream: &'a str,
    /// `false` for a partial line (`P`): the content continues on the next line.
    pub full: bool,
    pub content: &'a [u8],
}

/// Formats one line (the content without its newline) with a trailing newline.
pub fn format_line(
    time: SystemTime,
    stream: Stream,
    full: bool,
    content: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(rfc3339_nano(time).as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_str().as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// Parses one line (without its newline); `None` for a line not in the CRI format.
pub fn parse_line(line: &[u8]) -> Option<LogLine<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let timestamp = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let full = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(LogLine {
        timestamp,
        stream,
        full,
        content: parts.next().unwrap_or_default(),
    })
}

/// Go's `time.RFC3339Nano` in UTC: fraction without trailing zeros, omitted when zero.
pub fn rfc3339_nano(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    let nanos = since.subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// `YYYYmmdd-HHMMSS` in UTC, the suffix the kubelet gives rotated log files.
pub fn rotation_suffix(time: SystemTime) -> String {
    let stamp = rfc3339_nano(time);
    let digits: String = stamp
        .chars()
        .take(19)
        .filter(char::is_ascii_digit)
        .collect();
    format!("{}-{}", &digits[..8], &digits[8..])
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_like_go_rfc3339nano() {
        let t = UNIX_EPOCH + Duration::new(1_475_713_029, 669_794_202);
        assert_eq!(rfc3339_nano(t), "2016-10-06T00:17:09.669794202Z");
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::new(951_782_400, 500_000_000)),
            "2000-02-29T00:00:00.5Z"
        );
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rotation_suffix(t), "20161006-001709");
    }

    #[test]
    fn round_trips_lines() {
        let mut out = Vec::new();
        format_line(UNIX_EPOCH, Stream::Stderr, false, b"half a line", &mut out);
        assert_eq!(out, b"1970-01-01T00:00:00Z stderr P half a line\n");
        let line = parse_line(&out[..out.len() - 1]).unwrap();
        assert_eq!(
            (line.stream, line.full, line.content),
            ("stderr", false, &b"half a line"[..])
        );
        assert_eq!(parse_line(b"garbage"), None);
        assert_eq!(parse_line(b"t stdout F ").unwrap().content, b"");
    }
}
