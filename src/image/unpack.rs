//! Unpacking one layer blob into its own directory, in the form overlayfs reads as a lower
//! directory: an OCI whiteout `.wh.name` becomes a 0/0 character device `name`, an opaque
//! directory (`.wh..wh..opq`) gets the `trusted.overlay.opaque=y` xattr (containerd's overlay
//! mode, reference §3). Files, directories, symlinks, hard links, devices and FIFOs keep the
//! modes, owners, xattrs and mtimes the tar gives them.
//!
//! The tar is untrusted. Every entry path is cleaned (a leading `/` or `./` is dropped) and a `..`
//! component is an error, as is a whiteout of `.` or `..` (`.wh..`, `.wh...`); nothing is ever written through a symlink (an entry below a symlink the
//! layer made, `evil -> /etc` then `evil/passwd`, is refused); a hard link's target must be a
//! file of this layer. The directory must be new and empty: the store unpacks into a temporary
//! directory and renames it into place only when the whole layer and its diff_id checked out.

use std::collections::HashSet;
use std::ffi::{CString, OsStr};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use super::digest::{Digest, HashingReader};

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {entry:?} is refused: {reason}")]
    Refused { entry: String, reason: &'static str },
    #[error("layer entry {entry:?}: {source}")]
    Entry {
        entry: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the layer: {0}")]
    Read(#[source] io::Error),
}

/// What an unpacked layer held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    pub entries: u64,
    pub whiteouts: u64,
}

/// Unpacks the layer blob at `blob` (tar, gzip or zstd, told apart by their magic bytes) into the
/// empty directory `dest`, and returns the digest of the uncompressed tar: the layer's diff_id.
pub fn unpack_layer(blob: &Path, dest: &Path) -> Result<(Digest, Unpacked), UnpackError> {
    let mut file = File::open(blob).map_err(UnpackError::Read)?;
    let mut magic = [0u8; 4];
    let n = read_up_to(&mut file, &mut magic).map_err(UnpackError::Read)?;
    file.rewind().map_err(UnpackError::Read)?;
    let buffered = BufReader::with_capacity(256 * 1024, file);
    let decoded: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        [0x28, 0xb5, 0x2f, 0xfd] => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(UnpackError::Read)?)
        }
        _ => Box::new(buffered),
    };
    let mut reader = HashingReader::new(decoded);
    let unpacked = Unpacker::new(dest).run(&mut reader)?;
    let diff_id = reader.finish().map_err(UnpackError::Read)?;
    Ok((diff_id, unpacked))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

struct Unpacker<'a> {
    dest: &'a Path,
    /// Symlinks this layer made (relative paths): nothing may be written below them.
    symlinks: HashSet<PathBuf>,
    /// Directory mtimes, applied last (writing into a directory changes its mtime).
    dir_times: Vec<(PathBuf, u64)>,
    is_root: bool,
    stats: Unpacked,
}

impl<'a> Unpacker<'a> {
    fn new(dest: &'a Path) -> Self {
        Unpacker {
            dest,
            symlinks: HashSet::new(),
            dir_times: Vec::new(),
            is_root: nix::unistd::geteuid().is_root(),
            stats: Unpacked::default(),
        }
    }

    fn run(mut self, reader: &mut impl Read) -> Result<Unpacked, UnpackError> {
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(UnpackError::Read)? {
            let mut entry = entry.map_err(UnpackError::Read)?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw).into_owned();
            let rel = clean_path(Path::new(OsStr::from_bytes(&raw))).map_err(|reason| {
                UnpackError::Refused {
                    entry: name.clone(),
                    reason,
                }
            })?;
            self.apply(&mut entry, &rel, &name)?;
            self.stats.entries += 1;
        }
        for (path, mtime) in self.dir_times.iter().rev() {
            set_mtime(path, *mtime).map_err(|source| UnpackError::Entry {
                entry: path.display().to_string(),
                source,
            })?;
        }
        Ok(self.stats)
    }

    fn apply(
        &mut self,
        entry: &mut tar::Entry<'_, impl Read>,
        rel: &Path,
        name: &str,
    ) -> Result<(), UnpackError> {
        let refused = |reason| UnpackError::Refused {
            entry: name.to_string(),
            reason,
        };
        let io_err = |source| UnpackError::Entry {
            entry: name.to_string(),
            source,
        };
        let kind = entry.header().entry_type();
        if rel.as_os_str().is_empty() || kind == tar::EntryType::XGlobalHeader {
            // The layer root's attributes come from the container's upper dir; global PAX
            // headers carry nothing boot uses.
            return Ok(());
        }
        if self.below_symlink(rel) {
            return Err(refused("its path passes through a symlink"));
        }
        let base = rel
            .file_name()
            .map(|b| b.to_string_lossy())
            .unwrap_or_default();
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(rel, hidden).map_err(|e| match e {
                WhiteoutError::Invalid(reason) => refused(reason),
                WhiteoutError::Io(source) => io_err(source),
            });
        }
        let target = self.dest.join(rel);
        let header = entry.header().clone();
        let meta = Meta::read(entry, &header).map_err(io_err)?;
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_err)?;
        }
        if kind.is_dir() {
            match fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    remove_any(&target).map_err(io_err)?;
                    fs::create_dir(&target).map_err(io_err)?;
                }
                Err(_) => fs::create_dir(&target).map_err(io_err)?,
            }
            self.symlinks.remove(rel);
            self.finish(&target, &meta, true).map_err(io_err)?;
            self.dir_times.push((target, meta.mtime));
            return Ok(());
        }
        remove_any(&target).map_err(io_err)?;
        self.symlinks.remove(rel);
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&target)
                    .map_err(io_err)?;
                io::copy(entry, &mut out).map_err(io_err)?;
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name()
                    .map_err(io_err)?
                    .ok_or_else(|| refused("a symlink without a target"))?;
                if escapes(rel, &link) {
                    return Err(refused("its symlink target climbs out of the layer"));
                }
                std::os::unix::fs::symlink(&link, &target).map_err(io_err)?;
                self.symlinks.insert(rel.to_path_buf());
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name()
                    .map_err(io_err)?
                    .ok_or_else(|| refused("a hard link without a target"))?;
                let link_rel = clean_path(&link)
                    .map_err(|_| refused("its hard link target is outside the layer"))?;
                if link_rel.as_os_str().is_empty() || self.below_symlink(&link_rel) {
                    return Err(refused("its hard link target is outside the layer"));
                }
                let source = self.dest.join(&link_rel);
                match fs::symlink_metadata(&source) {
                    Ok(m) if !m.is_dir() => {}
                    _ => return Err(refused("its hard link target is not a file of this layer")),
                }
                fs::hard_link(&source, &target).map_err(io_err)?;
                if self.symlinks.contains(&link_rel) {
                    self.symlinks.insert(rel.to_path_buf());
                }
                return Ok(()); // a link shares its target's inode and attributes
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let kind_bits = match kind {
                    tar::EntryType::Char => libc::S_IFCHR,
                    tar::EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                mknod(
                    &target,
                    kind_bits | (meta.mode & 0o7777),
                    libc::makedev(major, minor),
                )
                .map_err(io_err)?;
            }
            _ => return Err(refused("an unsupported tar entry type")),
        }
        let is_symlink = kind == tar::EntryType::Symlink;
        self.finish(&target, &meta, !is_symlink).map_err(io_err)
    }

    /// Owner, then mode (chown clears set-id bits), xattrs and mtime.
    fn finish(&self, path: &Path, meta: &Meta, follow: bool) -> io::Result<()> {
        if self.is_root {
            std::os::unix::fs::lchown(path, Some(meta.uid), Some(meta.gid))?;
        }
        if follow {
            fs::set_permissions(path, fs::Permissions::from_mode(meta.mode & 0o7777))?;
        }
        for (key, value) in &meta.xattrs {
            if !self.is_root && !key.starts_with("user.") {
                continue;
            }
            match lsetxattr(path, key, value) {
                Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => {}
                other => other?,
            }
        }
        if follow {
            set_mtime(path, meta.mtime)?;
        }
        Ok(())
    }

    fn below_symlink(&self, rel: &Path) -> bool {
        !self.symlinks.is_empty() && rel.ancestors().skip(1).any(|a| self.symlinks.contains(a))
    }

    fn whiteout(&mut self, rel: &Path, hidden: &str) -> Result<(), WhiteoutError> {
        if hidden.is_empty() {
            return Err(WhiteoutError::Invalid("a bare .wh. whiteout"));
        }
        // `.wh..` and `.wh...` would delete the directory itself or its parent: at the layer
        // root, the store's tmp/ with every other pull's partial download in it.
        if hidden == "." || hidden == ".." {
            return Err(WhiteoutError::Invalid(
                "it whites out '.' or '..', not an entry",
            ));
        }
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = self.dest.join(parent_rel);
        fs::create_dir_all(&parent).map_err(WhiteoutError::Io)?;
        self.stats.whiteouts += 1;
        if format!("{WHITEOUT_PREFIX}{hidden}") == OPAQUE_MARKER {
            return lsetxattr(&parent, OPAQUE_XATTR, b"y").map_err(WhiteoutError::Io);
        }
        if hidden.starts_with(WHITEOUT_PREFIX) {
            return Ok(()); // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not part of the image
        }
        let target = parent.join(hidden);
        remove_any(&target).map_err(WhiteoutError::Io)?;
        self.symlinks.remove(&parent_rel.join(hidden));
        mknod(&target, libc::S_IFCHR, libc::makedev(0, 0)).map_err(WhiteoutError::Io)
    }
}

enum WhiteoutError {
    Invalid(&'static str),
    Io(io::Error),
}

/// Owner, mode, mtime and xattrs of an entry (PAX records override the header).
struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl Meta {
    fn read(entry: &mut tar::Entry<'_, impl Read>, header: &tar::Header) -> io::Result<Meta> {
        let mut meta = Meta {
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            mode: header.mode().unwrap_or(0o644),
            mtime: header.mtime().unwrap_or(0),
            xattrs: Vec::new(),
        };
        if let Some(extensions) = entry.pax_extensions()? {
            for ext in extensions {
                let ext = ext?;
                let Ok(key) = ext.key() else { continue };
                let number = || ext.value().ok().and_then(|v| v.parse::<u32>().ok());
                if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                    meta.xattrs
                        .push((name.to_string(), ext.value_bytes().to_vec()));
                } else if key == "uid" {
                    meta.uid = number().unwrap_or(meta.uid);
                } else if key == "gid" {
                    meta.gid = number().unwrap_or(meta.gid);
                }
            }
        }
        Ok(meta)
    }
}

/// The entry path relative to the layer root: `/` and `.` dropped, `..` refused.
fn clean_path(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(part) => out.push(part),
            Component::ParentDir => return Err("its path contains '..'"),
            Component::Prefix(_) => return Err("its path has a prefix"),
        }
    }
    Ok(out)
}

/// Whether a relative symlink target, read from the link's directory, climbs above the layer
/// root. Absolute targets name paths inside the container's root (the kernel resolves them in the
/// container's mount namespace) and boot never follows them while unpacking.
fn escapes(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth = link.components().count() as i64 - 1;
    for component in target.components() {
        match component {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return true;
        }
    }
    false
}

/// Removes whatever is at `path` (file, link, device or directory tree), never following links.
fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn mknod(path: &Path, mode: u32, dev: libc::dev_t) -> io::Result<()> {
    let c = c_path(path)?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn lsetxattr(path: &Path, key: &str, value: &[u8]) -> io::Result<()> {
    let c = c_path(path)?;
    let k = CString::new(key).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_mtime(path: &Path, mtime: u64) -> io::Result<()> {
    let c = c_path(path)?;
    let time = libc::timespec {
        tv_sec: mtime.min(i64::MAX as u64) as libc::time_t,
        tv_nsec: 0,
    };
    let times = [time, time];
    // SAFETY: valid path and a two-element timespec array as utimensat requires.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths_and_refuses_parent_components() {
        assert_eq!(
            clean_path(Path::new("/usr/./bin/sh")).unwrap(),
            Path::new("usr/bin/sh")
        );
        assert_eq!(clean_path(Path::new("./")).unwrap(), Path::new(""));
        assert!(clean_path(Path::new("../x")).is_err());
        assert!(clean_path(Path::new("a/../../x")).is_err());
    }

    #[test]
    fn relative_symlinks_may_not_climb_out() {
        assert!(!escapes(Path::new("bin/sh"), Path::new("busybox")));
        assert!(!escapes(
            Path::new("etc/mtab"),
            Path::new("../proc/self/mounts")
        ));
        assert!(!escapes(Path::new("bin/sh"), Path::new("/bin/busybox")));
        assert!(escapes(Path::new("etc/x"), Path::new("../../etc/passwd")));
        assert!(escapes(Path::new("x"), Path::new("../y")));
        assert!(escapes(Path::new("a/b"), Path::new("c/../../../d")));
    }
}
