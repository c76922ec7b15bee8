//! The per-container log relay, run as `boot log-relay --file F` by the agent: reads the
//! container's stdout on fd 0 and stderr on fd 3 until both close, writes CRI lines to `F` and
//! rotates it by size (the current file is renamed to `F.<YYYYmmdd-HHMMSS>`, the oldest rotated
//! files beyond `max_files - 1` are deleted, like the kubelet's container log manager).
//!
//! Touches: the log file and its rotated siblings.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::cri::{format_line, rotation_suffix, Stream, MAX_LINE};

/// A log file that rotates once it would grow past `max_size`.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
}

impl RotatingLog {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<RotatingLog> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
        })
    }

    /// Appends one formatted line (or several, when it is split into partial lines).
    pub fn write_line(&mut self, stream: Stream, content: &[u8], full: bool) -> io::Result<()> {
        let mut out = Vec::with_capacity(content.len() + 48);
        format_line(SystemTime::now(), stream, full, content, &mut out);
        if self.size > 0 && self.size + out.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&out)?;
        self.size += out.len() as u64;
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
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        let mut old = super::files::rotated_files(&self.path);
        let keep = self.max_files.saturating_sub(1) as usize;
        if old.len() > keep {
            for path in old.drain(..old.len() - keep) {
                let _ = fs::remove_file(path);
            }
        }
        Ok(())
    }
}

/// Copies `reader` line by line into `log` until end of file.
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
        log.write_line(stream, content, !partial)?;
    }
}

/// The relay's main: stdout from fd 0, stderr from fd 3, until both are closed.
pub fn run(file: &Path, max_size: u64, max_files: u32) -> io::Result<()> {
    let log = Arc::new(Mutex::new(RotatingLog::open(file, max_size, max_files)?));
    // SAFETY: the agent passes the stderr pipe as fd 3; nothing else in this process owns it.
    let stderr = unsafe { OwnedFd::from_raw_fd(3) };
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
        let log = Mutex::new(RotatingLog::open(&path, 1 << 20, 3).unwrap());
        let mut input = b"one\ntwo\n".to_vec();
        input.extend(vec![b'x'; MAX_LINE + 5]);
        input.extend(b"\nlast");
        pump(&input[..], Stream::Stdout, &log).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["F", "F", "P", "F", "F"]);
        assert!(text.lines().next().unwrap().ends_with(" stdout F one"));
        assert!(text.lines().last().unwrap().ends_with(" F last"));

        let small = Mutex::new(RotatingLog::open(&dir.path().join("d/0.log"), 100, 3).unwrap());
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
}
