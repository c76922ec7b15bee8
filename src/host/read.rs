//! Bounded reads of the files `boot` is given or finds: everything it reads is untrusted, so a
//! read has a size limit, reads only a regular file (a FIFO would block, a device never ends), and
//! under boot's own directories never follows a symbolic link planted there.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// What a read does with a symbolic link at the path itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// boot's own files (records, journals, ledgers, its PKI and manifests): a link is refused.
    Refuse,
    /// Files the user names (a kubeconfig, a CNI configuration): followed, as kubeadm and the
    /// kubelet do.
    Follow,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot open: {0}")]
    Open(#[source] io::Error),
    #[error("not a regular file")]
    NotRegular,
    #[error("larger than {max} bytes")]
    TooLarge { max: u64 },
    #[error("{0}")]
    Read(#[source] io::Error),
}

impl From<ReadError> for io::Error {
    fn from(error: ReadError) -> io::Error {
        match error {
            ReadError::Open(e) | ReadError::Read(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

/// The contents of the regular file at `path`, at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64, links: Links) -> Result<Vec<u8>, ReadError> {
    read(open(path, links).map_err(ReadError::Open)?, max)
}

/// [`read_bounded`], or `None` when nothing is at `path`.
pub fn read_bounded_if_exists(
    path: &Path,
    max: u64,
    links: Links,
) -> Result<Option<Vec<u8>>, ReadError> {
    match open(path, links) {
        Ok(file) => read(file, max).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReadError::Open(e)),
    }
}

fn open(path: &Path, links: Links) -> io::Result<File> {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked after.
    let flags = match links {
        Links::Refuse => libc::O_NOFOLLOW | libc::O_NONBLOCK,
        Links::Follow => libc::O_NONBLOCK,
    };
    OpenOptions::new()
        .read(true)
        .custom_flags(flags | libc::O_NOCTTY)
        .open(path)
}

fn read(file: File, max: u64) -> Result<Vec<u8>, ReadError> {
    if !file.metadata().map_err(ReadError::Read)?.is_file() {
        return Err(ReadError::NotRegular);
    }
    let mut bytes = Vec::new();
    // One byte more than allowed, so a file that grew after the check is still caught.
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Read)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_regular_files_and_links_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_bounded(&file, 5, Links::Refuse).unwrap(), b"12345");
        let err = read_bounded(&file, 4, Links::Refuse).unwrap_err();
        assert_eq!(err.to_string(), "larger than 4 bytes");

        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(matches!(
            read_bounded(&link, 5, Links::Refuse),
            Err(ReadError::Open(_))
        ));
        assert_eq!(read_bounded(&link, 5, Links::Follow).unwrap(), b"12345");

        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(matches!(
            read_bounded(&fifo, 5, Links::Follow),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(
            read_bounded(dir.path(), 5, Links::Follow),
            Err(ReadError::NotRegular)
        ));

        let missing = dir.path().join("missing");
        assert!(read_bounded_if_exists(&missing, 5, Links::Refuse)
            .unwrap()
            .is_none());
        assert!(read_bounded(&missing, 5, Links::Refuse)
            .unwrap_err()
            .to_string()
            .starts_with("cannot open: "));
    }
}
