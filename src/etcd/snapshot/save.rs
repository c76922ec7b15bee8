//! `boot etcd snapshot save`: a consistent snapshot of one member's database through etcd's
//! Maintenance API (`POST /v3/maintenance/snapshot` on the gateway, one JSON message per chunk
//! of at most 32 KiB, the SHA-256 of the database last), streamed into a temporary dotfile
//! beside the destination (0600), synced, checked as restore will check it ([`super::check`])
//! and only then linked under its name, never over an existing file. A failure at any point
//! leaves no file behind.

use std::fs::{DirBuilder, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::Deserialize;

use super::{check, Checked, SnapshotError};
use crate::etcd::EtcdClient;

/// One message of the stream is a 32 KiB chunk in base64 (~44 KiB); anything much larger is not
/// etcd talking.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// A snapshot on disk under its final name.
#[derive(Debug, Clone)]
pub struct Saved {
    pub path: PathBuf,
    pub checked: Checked,
    pub took: Duration,
}

/// Streams a snapshot from `client`'s first answering endpoint to `destination` (whose
/// directory is created 0700), within `timeout`.
pub async fn save(
    client: &EtcdClient,
    destination: &Path,
    timeout: Duration,
) -> Result<Saved, SnapshotError> {
    let started = Instant::now();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    let dir = destination
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    if destination.exists() {
        return Err(SnapshotError::Exists {
            path: destination.to_path_buf(),
        });
    }
    let name = destination
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io(dir))?;
    let mut stream = Stream::new(temp.as_file().try_clone().map_err(io(temp.path()))?);
    client
        .stream(
            "/v3/maintenance/snapshot",
            &serde_json::json!({}),
            timeout,
            &mut |chunk| stream.feed(chunk),
        )
        .await?;
    let written = stream.finish().map_err(|reason| SnapshotError::Stream {
        path: destination.to_path_buf(),
        reason,
    })?;
    temp.as_file().sync_all().map_err(io(temp.path()))?;
    // Hashing a database of gigabytes takes seconds: off the async threads (the agent's too).
    let temp_path = temp.path().to_path_buf();
    let checked = tokio::task::spawn_blocking(move || check(&temp_path))
        .await
        .map_err(|e| SnapshotError::Stream {
            path: destination.to_path_buf(),
            reason: e.to_string(),
        })?
        .map_err(|e| match e {
            SnapshotError::Invalid { reason, .. } => SnapshotError::Stream {
                path: destination.to_path_buf(),
                reason: format!("what etcd sent is not a valid snapshot: {reason}"),
            },
            other => other,
        })?;
    if checked.size != written {
        return Err(SnapshotError::Stream {
            path: destination.to_path_buf(),
            reason: format!("{written} bytes written, {} on disk", checked.size),
        });
    }
    temp.persist_noclobber(destination)
        .map_err(|e| match e.error.kind() {
            std::io::ErrorKind::AlreadyExists => SnapshotError::Exists {
                path: destination.to_path_buf(),
            },
            _ => SnapshotError::Io {
                path: destination.to_path_buf(),
                source: e.error,
            },
        })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(Saved {
        path: destination.to_path_buf(),
        checked,
        took: started.elapsed(),
    })
}

#[derive(Deserialize)]
struct Message {
    result: Option<Chunk>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    blob: String,
    /// protobuf's JSON mapping writes a uint64 as a string; 0 is left out.
    #[serde(default)]
    remaining_bytes: Option<Number>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Text(String),
    Plain(u64),
}

impl Number {
    fn value(&self) -> Option<u64> {
        match self {
            Number::Text(t) => t.parse().ok(),
            Number::Plain(n) => Some(*n),
        }
    }
}

/// The gateway's message stream turned back into the file etcd sent.
struct Stream {
    file: File,
    pending: Vec<u8>,
    /// Database bytes etcd announced with its first chunk.
    expected: Option<u64>,
    written: u64,
    messages: u64,
}

impl Stream {
    fn new(file: File) -> Stream {
        Stream {
            file,
            pending: Vec::new(),
            expected: None,
            written: 0,
            messages: 0,
        }
    }

    fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.pending.extend_from_slice(bytes);
        let mut consumed = 0;
        {
            let mut messages =
                serde_json::Deserializer::from_slice(&self.pending).into_iter::<Message>();
            loop {
                match messages.next() {
                    Some(Ok(message)) => {
                        consumed = messages.byte_offset();
                        let chunk = match (message.result, message.error) {
                            (_, Some(error)) => {
                                let text = error
                                    .get("message")
                                    .and_then(|m| m.as_str())
                                    .map(str::to_string)
                                    .unwrap_or_else(|| error.to_string());
                                return Err(format!("etcd: {text}"));
                            }
                            (Some(chunk), None) => chunk,
                            (None, None) => return Err("a message with no result".into()),
                        };
                        let blob = BASE64
                            .decode(chunk.blob.as_bytes())
                            .map_err(|e| format!("a chunk is not base64: {e}"))?;
                        if self.expected.is_none() {
                            let remaining = chunk
                                .remaining_bytes
                                .as_ref()
                                .map(|n| n.value().ok_or("remaining_bytes is not a number"))
                                .transpose()?
                                .unwrap_or(0);
                            self.expected = Some(remaining + blob.len() as u64);
                        }
                        self.file.write_all(&blob).map_err(|e| e.to_string())?;
                        self.written += blob.len() as u64;
                        self.messages += 1;
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return Err(format!("not etcd's message stream: {e}")),
                    None => break,
                }
            }
        }
        self.pending.drain(..consumed);
        if self.pending.len() > MAX_MESSAGE {
            return Err(format!("a message longer than {MAX_MESSAGE} bytes"));
        }
        Ok(())
    }

    /// The bytes written, once the stream is complete: the announced database and its digest.
    fn finish(mut self) -> Result<u64, String> {
        self.file.flush().map_err(|e| e.to_string())?;
        if self.pending.iter().any(|b| !b.is_ascii_whitespace()) {
            return Err("the stream ended inside a message".into());
        }
        let expected = self.expected.ok_or("etcd sent no data")?;
        if self.written != expected + 32 {
            return Err(format!(
                "etcd announced a database of {expected} bytes and sent {} bytes in {} messages \
                 (the database and its 32-byte SHA-256 were expected)",
                self.written, self.messages
            ));
        }
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> (tempfile::NamedTempFile, Stream) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let stream = Stream::new(file.as_file().try_clone().unwrap());
        (file, stream)
    }

    fn message(blob: &[u8], remaining: u64) -> String {
        let remaining = if remaining == 0 {
            String::new()
        } else {
            format!(",\"remaining_bytes\":\"{remaining}\"")
        };
        format!(
            "{{\"result\":{{\"blob\":\"{}\"{remaining}}}}}\n",
            BASE64.encode(blob)
        )
    }

    #[test]
    fn messages_split_anywhere_are_joined_back_into_the_file() {
        let (file, mut s) = stream();
        let text = [
            message(&[1u8; 40], 24),
            message(&[2u8; 24], 0),
            message(&[9u8; 32], 0),
        ]
        .concat();
        for piece in text.as_bytes().chunks(7) {
            s.feed(piece).unwrap();
        }
        assert_eq!(s.finish().unwrap(), 96);
        let bytes = std::fs::read(file.path()).unwrap();
        assert_eq!(&bytes[..40], &[1u8; 40]);
        assert_eq!(&bytes[64..], &[9u8; 32]);
    }

    #[test]
    fn a_short_stream_an_error_and_garbage_are_refused() {
        let (_f, mut s) = stream();
        s.feed(message(&[1u8; 40], 24).as_bytes()).unwrap();
        assert!(s
            .finish()
            .unwrap_err()
            .contains("announced a database of 64"));

        let (_f, mut s) = stream();
        let err = s
            .feed(br#"{"error":{"grpc_code":14,"message":"etcdserver: leader changed"}}"#)
            .unwrap_err();
        assert_eq!(err, "etcd: etcdserver: leader changed");

        let (_f, mut s) = stream();
        assert!(s.feed(b"<html>").unwrap_err().contains("not etcd's"));

        let (_f, mut s) = stream();
        s.feed(br#"{"result":{"blob":"AAAA"#).unwrap();
        assert!(s.finish().unwrap_err().contains("inside a message"));

        let (_f, mut s) = stream();
        let long = vec![b' '; 64 * 1024];
        s.feed(b"{\"result\":{\"blob\":\"").unwrap();
        let mut err = None;
        for _ in 0..(MAX_MESSAGE / long.len() + 2) {
            if let Err(e) = s.feed(&long) {
                err = Some(e);
                break;
            }
        }
        assert!(err.unwrap().contains("longer than"));
    }
}
