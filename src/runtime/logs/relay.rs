//! The per-container log relay, run as `boot log-relay --file F` by the agent: reads the
//! container's stdout on fd 0 and stderr on fd 3 until both close, writes CRI lines to `F` and
//! rotates it by size (the current file is renamed to `F.<YYYYmmdd-HHMMSS>`, the oldest rotated
//! files beyond `max_files - 1` are deleted, like the kubelet's container log manager).
//!
//! The relay never blocks or kills its container: when the log file cannot be written (a full
//! disk, a quota, an I/O error) it keeps draining both pipes, drops what it cannot write and counts
//! it, tries the file again after [`RETRY_AFTER`], and once a write succeeds again first writes a
//! line saying how much was dropped. It checks that fd 3 was inherited before it opens anything,
//! so that a relay started without it never reads its own log file as the container's stderr.
//!
//! Touches: the log file and its rotated siblings.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use super::cri::{format_line, rotation_suffix, Stream, MAX_LINE};

/// How long a log file that failed a write is left alone before it is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The descriptor the agent hands the container's stderr pipe on.
pub const STDERR_FD: i32 = 3;
/// What the agent runs the relay from: the agent's own executable, also when the binary on disk
/// was replaced (an upgrade) or removed since the agent started.
pub const SELF_EXE: &str = "/proc/self/exe";

/// What could not be written since the last successful write.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub lines: u64,
    pub bytes: u64,
    /// The last error, for the notice.
    pub cause: String,
}

/// A log file that rotates once it would grow past `max_size`, and that drops (and counts) what
/// it cannot write instead of failing.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    /// `None` until opened, and again after a failed write (reopened on the next try).
    file: Option<File>,
    size: u64,
    max_size: u64,
    max_files: u32,
    dropped: Dropped,
    retry_at: Option<Instant>,
}

impl RotatingLog {
    /// The log at `path`; opened on the first write (and retried later if that fails).
    pub fn new(path: &Path, max_size: u64, max_files: u32) -> RotatingLog {
        RotatingLog {
            path: path.to_path_buf(),
            file: None,
            size: 0,
            max_size,
            max_files: max_files.max(1),
            dropped: Dropped::default(),
            retry_at: None,
        }
    }

    /// What was dropped since the last successful write.
    pub fn dropped(&self) -> &Dropped {
        &self.dropped
    }

    /// Appends one formatted line; what cannot be written now is dropped and counted.
    pub fn write_line(&mut self, stream: Stream, content: &[u8], full: bool) {
        let now = SystemTime::now();
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            self.drop_line(content.len(), None);
            return;
        }
        if self.dropped.lines > 0 {
            let notice = format!(
                "[boot log-relay] dropped {} lines ({} bytes) of output that could not be written to {}: {}",
                self.dropped.lines,
                self.dropped.bytes,
                self.path.display(),
                self.dropped.cause
            );
            let mut out = Vec::with_capacity(notice.len() + 48);
            format_line(now, Stream::Stderr, true, notice.as_bytes(), &mut out);
            if let Err(e) = self.append(&out) {
                self.drop_line(content.len(), Some(e));
                return;
            }
            self.dropped = Dropped::default();
        }
        let mut out = Vec::with_capacity(content.len() + 48);
        format_line(now, stream, full, content, &mut out);
        if let Err(e) = self.append(&out) {
            self.drop_line(content.len(), Some(e));
        }
    }

    fn drop_line(&mut self, bytes: usize, error: Option<io::Error>) {
        self.dropped.lines += 1;
        self.dropped.bytes += bytes as u64;
        if let Some(e) = error {
            self.dropped.cause = e.to_string();
            // A write may have stopped halfway: reopen (and find the end again) on the next try.
            self.file = None;
            self.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
    }

    fn append(&mut self, out: &[u8]) -> io::Result<()> {
        if self.file.is_none() {
            self.reopen()?;
        }
        if self.size > 0 && self.size + out.len() as u64 > self.max_size {
            self.rotate()?;
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("not open"))?;
        file.write_all(out)?;
        self.size += out.len() as u64;
        self.retry_at = None;
        Ok(())
    }

    /// Opens the file for appending; a line cut off by an earlier failed write is ended first, so
    /// that the next line starts on a line of its own.
    fn reopen(&mut self) -> io::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)?;
        let size = file.metadata()?.len();
        let mut last = [0u8; 1];
        if size > 0 && file.read_at(&mut last, size - 1)? == 1 && last[0] != b'\n' {
            file.write_all(b"\n")?;
        }
        self.size = file.metadata()?.len();
        self.file = Some(file);
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let base = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = self.path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let mut rotated = dir.join(format!("{base}.{}", rotation_suffix(SystemTime::now())));
        let mut n = 1;
        while rotated.exists() {
            rotated = dir.join(format!("{base}.{}.{n}", rotation_suffix(SystemTime::now())));
            n += 1;
        }
        fs::rename(&self.path, &rotated)?;
        self.file = None;
        let mut old = super::files::rotated_files(&self.path);
        let keep = self.max_files.saturating_sub(1) as usize;
        if old.len() > keep {
            for path in old.drain(..old.len() - keep) {
                let _ = fs::remove_file(path);
            }
        }
        self.reopen()
    }
}

/// Copies `reader` line by line into `log` until end of file. Only a read error ends it early:
/// a write error never stops the draining.
pub fn pump(reader: impl Read, stream: Stream, log: &Mutex<RotatingLog>) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            return Ok(());
        }
        let full = line.last() == Some(&b'\n');
        let content = if full {
            &line[..line.len() - 1]
        } else {
            &line[..]
        };
        // A line cut at MAX_LINE continues (P); text at end of file without newline is final (F).
        let partial = !full && n == MAX_LINE;
        let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
        log.write_line(stream, content, !partial);
    }
}

/// Fails unless `fd` is open in this process (inherited from the agent).
fn check_inherited(fd: i32, what: &str) -> io::Result<()> {
    // SAFETY: F_GETFD only reads the descriptor's flags.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
        return Err(io::Error::other(format!(
            "fd {fd} ({what}) was not inherited: `boot log-relay` is started by the agent with the \
             container's stdout on fd 0 and its stderr on fd {STDERR_FD}"
        )));
    }
    Ok(())
}

/// The relay's main: stdout from fd 0, stderr from fd 3, until both are closed.
pub fn run(file: &Path, max_size: u64, max_files: u32) -> io::Result<()> {
    // Before anything is opened: a free fd 3 would otherwise be the next file's number.
    check_inherited(0, "the container's stdout")?;
    check_inherited(STDERR_FD, "the container's stderr")?;
    // SAFETY: fd 3 is open (checked above) and was handed to this process for this alone.
    let stderr = unsafe { OwnedFd::from_raw_fd(STDERR_FD) };
    let log = Arc::new(Mutex::new(RotatingLog::new(file, max_size, max_files)));
    let stderr_log = log.clone();
    let stderr_thread =
        std::thread::spawn(move || pump(File::from(stderr), Stream::Stderr, &stderr_log));
    let stdout_result = pump(io::stdin().lock(), Stream::Stdout, &log);
    let stderr_result = stderr_thread
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("stderr relay panicked")));
    stdout_result.and(stderr_result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_cri_lines_splits_long_ones_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let log = Mutex::new(RotatingLog::new(&path, 1 << 20, 3));
        let mut input = b"one\ntwo\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE + 5]);
        input.extend(b"\nlast");
        pump(&input[..], Stream::Stdout, &log).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["F", "F", "P", "F", "F"]);
        assert!(text.lines().next().unwrap().ends_with(" stdout F one"));
        assert!(text.lines().last().unwrap().ends_with(" F last"));

        let small = Mutex::new(RotatingLog::new(&dir.path().join("d/0.log"), 100, 3));
        for _ in 0..10 {
            pump(
                &b"0123456789012345678901234567890123456789\n"[..],
                Stream::Stderr,
                &small,
            )
            .unwrap();
        }
        let rotated = super::super::files::rotated_files(&dir.path().join("d/0.log"));
        assert_eq!(
            rotated.len(),
            2,
            "max_files 3 keeps the current file and two rotated: {rotated:?}"
        );
    }

    #[test]
    fn unwritable_file_drops_counts_and_reports_once_writable_again() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the log file should be: every open fails.
        let path = dir.path().join("c/0.log");
        fs::create_dir_all(&path).unwrap();
        let log = Mutex::new(RotatingLog::new(&path, 1 << 20, 3));
        pump(&b"lost one\nlost two\n"[..], Stream::Stdout, &log).unwrap();
        let dropped = log.lock().unwrap().dropped().clone();
        assert_eq!((dropped.lines, dropped.bytes), (2, 16));
        assert!(!dropped.cause.is_empty());

        fs::remove_dir(&path).unwrap();
        log.lock().unwrap().retry_at = Some(Instant::now());
        pump(&b"back\n"[..], Stream::Stdout, &log).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains(" stderr F [boot log-relay] dropped 2 lines (16 bytes)"),
            "{text}"
        );
        assert!(lines[1].ends_with(" stdout F back"), "{text}");
        assert_eq!(log.lock().unwrap().dropped().lines, 0);
    }
}
