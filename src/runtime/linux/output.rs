//! The output of a command run inside a container (the CRI's `ExecSync`): stdout and stderr share
//! one pipe (Go's `CombinedOutput`, which the kubelet uses) and the first
//! [`EXEC_OUTPUT_LIMIT`] bytes are kept; the rest is drained so the command never blocks on a
//! full pipe.

use std::io;
use std::os::fd::OwnedFd;

use tokio::io::AsyncReadExt;

use crate::runtime::EXEC_OUTPUT_LIMIT;

/// A close-on-exec pipe: the read end for us, the write end for the child's stdout and stderr.
pub fn output_pipe() -> io::Result<(tokio::net::unix::pipe::Receiver, OwnedFd)> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((
        tokio::net::unix::pipe::Receiver::from_owned_fd(read)?,
        write,
    ))
}

/// Reads to EOF, keeping the first [`EXEC_OUTPUT_LIMIT`] bytes.
pub async fn read_capped(mut reader: tokio::net::unix::pipe::Receiver) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = reader.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let room = EXEC_OUTPUT_LIMIT.saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    kept
}
