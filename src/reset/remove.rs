//! Removing files, empty directories and the content of trees strictly beneath the host root,
//! with fd-relative system calls instead of check-then-act on path strings: every directory on
//! the way is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` (or, where the kernel
//! or a seccomp filter refuses `openat2`, one `openat(O_NOFOLLOW)` per component), and the
//! entry itself is removed with `unlinkat` on that directory's descriptor. A symlink planted
//! anywhere on the way makes the removal fail instead of reaching outside; a symlink that is
//! itself the entry is removed, never followed; mount points inside a tree are not crossed.
//!
//! Touches: only what the reset plan names, under `--root` (`/` for the real root).

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// Trees deeper than this are refused rather than walked (boot's trees are a few levels deep).
const MAX_DEPTH: usize = 64;

/// The host root, opened once; every removal is resolved beneath it.
#[derive(Debug)]
pub struct Beneath {
    root: OwnedFd,
    prefix: PathBuf,
}

fn refused(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} lies behind a symlink or outside the root; not following it",
        path.display()
    ))
}

impl Beneath {
    /// Opens the root prefix (which the user chose with `--root`, so it may itself be reached
    /// through symlinks).
    pub fn open(prefix: &Path) -> io::Result<Beneath> {
        let root = nix::fcntl::open(
            prefix,
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Beneath {
            root,
            prefix: prefix.to_path_buf(),
        })
    }

    /// `path` relative to the root, as plain names only (the ledger is validated, but this is
    /// the last line: `..`, `.` and the root itself are refused here too).
    fn relative<'a>(&self, path: &'a Path) -> io::Result<Vec<&'a OsStr>> {
        let rest = path.strip_prefix(&self.prefix).map_err(|_| refused(path))?;
        let names: Vec<&OsStr> = rest
            .components()
            .map(|c| match c {
                Component::Normal(name) => Ok(name),
                _ => Err(refused(path)),
            })
            .collect::<io::Result<_>>()?;
        if names.is_empty() {
            return Err(io::Error::other(format!(
                "{} is the root itself; never removed",
                path.display()
            )));
        }
        Ok(names)
    }

    /// Opens the directory `names` beneath the root without following any symlink.
    fn open_dir(&self, names: &[&OsStr], whole: &Path) -> io::Result<Option<OwnedFd>> {
        let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
        if names.is_empty() {
            return Ok(Some(self.root.try_clone()?));
        }
        let rel: PathBuf = names.iter().collect();
        let how = OpenHow::new()
            .flags(flags)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS);
        let result = match openat2(self.root.as_fd(), &rel, how) {
            // No openat2 (kernel < 5.6) or a seccomp filter refusing it: walk name by name.
            Err(Errno::ENOSYS | Errno::EPERM) => walk(self.root.as_fd(), names, flags),
            other => other,
        };
        match result {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT) => Ok(None),
            Err(Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR) => Err(refused(whole)),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    /// Removes a file or a symlink (never its target). `Ok(false)` when it was not there.
    pub fn remove_file(&self, path: &Path) -> io::Result<bool> {
        self.unlink(path, UnlinkatFlags::NoRemoveDir)
    }

    /// Removes an empty directory (a symlink in its place is refused). `Ok(false)` when absent.
    pub fn remove_dir(&self, path: &Path) -> io::Result<bool> {
        self.unlink(path, UnlinkatFlags::RemoveDir)
    }

    fn unlink(&self, path: &Path, flag: UnlinkatFlags) -> io::Result<bool> {
        let names = self.relative(path)?;
        let (name, parents) = names.split_last().ok_or_else(|| refused(path))?;
        let Some(dir) = self.open_dir(parents, path)? else {
            return Ok(false);
        };
        match unlinkat(&dir, *name, flag) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(Errno::ENOTDIR) => Err(io::Error::other(format!(
                "{} is not a directory (a symlink or a file is in its place)",
                path.display()
            ))),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    /// Removes everything inside `tree` but what `keep` names (the ledger, a kept image store)
    /// and the directories leading to it. `Ok(false)` when the tree is absent or was already empty.
    pub fn empty_tree(&self, tree: &Path, keep: &[&Path]) -> io::Result<bool> {
        let names = self.relative(tree)?;
        let Some(dir) = self.open_dir(&names, tree)? else {
            return Ok(false);
        };
        let keep: Vec<&Path> = keep
            .iter()
            .filter_map(|k| k.strip_prefix(tree).ok())
            .collect();
        empty_dir(dir, tree, &keep, 0)
    }
}

/// `openat(O_NOFOLLOW)` one name at a time: a symlink anywhere fails with ELOOP.
fn walk(root: BorrowedFd<'_>, names: &[&OsStr], flags: OFlag) -> nix::Result<OwnedFd> {
    let mut current = openat(root, ".", flags, Mode::empty())?;
    for name in names {
        current = openat(&current, *name, flags, Mode::empty())?;
    }
    Ok(current)
}

/// Empties the open directory `dir` (shown as `shown`); the `keep` paths are relative to it.
fn empty_dir(dir: OwnedFd, shown: &Path, keep: &[&Path], depth: usize) -> io::Result<bool> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "{} is nested deeper than {MAX_DEPTH} levels; not walking it",
            shown.display()
        )));
    }
    let device = fstat(&dir)?.st_dev;
    let names: Vec<std::ffi::CString> = nix::dir::Dir::from_fd(dir.try_clone()?)?
        .into_iter()
        .filter_map(|entry| entry.ok().map(|e| e.file_name().to_owned()))
        .filter(|name| name.as_bytes() != b"." && name.as_bytes() != b"..")
        .collect();
    let mut removed = false;
    for name in names {
        let os_name = <OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name.as_bytes());
        let path = shown.join(os_name);
        let inner_keep: Vec<&Path> = keep
            .iter()
            .filter_map(|k| k.strip_prefix(os_name).ok())
            .collect();
        let stat = match fstatat(
            &dir,
            name.as_c_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(io::Error::from(e)),
        };
        let is_dir = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
        if !inner_keep.is_empty() {
            // A kept path itself, or a directory on the way to one: its other content goes.
            if is_dir && inner_keep.iter().all(|inner| !inner.as_os_str().is_empty()) {
                let sub = open_child(&dir, &name, &path, device)?;
                removed |= empty_dir(sub, &path, &inner_keep, depth + 1)?;
            }
            continue;
        }
        if is_dir {
            let sub = open_child(&dir, &name, &path, device)?;
            empty_dir(sub, &path, &[], depth + 1)?;
            unlinkat(&dir, name.as_c_str(), UnlinkatFlags::RemoveDir).map_err(io::Error::from)?;
        } else {
            unlinkat(&dir, name.as_c_str(), UnlinkatFlags::NoRemoveDir).map_err(io::Error::from)?;
        }
        removed = true;
    }
    Ok(removed)
}

/// Opens a subdirectory without following a symlink swapped in since the `fstatat`, and refuses
/// to cross into another file system (a bind mount is not boot's content).
fn open_child(
    dir: &OwnedFd,
    name: &std::ffi::CStr,
    path: &Path,
    device: u64,
) -> io::Result<OwnedFd> {
    let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let sub = openat(dir, name, flags, Mode::empty()).map_err(|e| match e {
        Errno::ELOOP | Errno::ENOTDIR => refused(path),
        e => io::Error::from(e),
    })?;
    if fstat(&sub)?.st_dev != device {
        return Err(io::Error::other(format!(
            "{} is a mount point; unmount it first",
            path.display()
        )));
    }
    Ok(sub)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(outside.join("kubernetes/manifests")).unwrap();
        fs::write(outside.join("precious"), "keep").unwrap();
        Fixture {
            _dir: dir,
            root,
            outside,
        }
    }

    #[test]
    fn nothing_behind_a_symlinked_directory_is_removed() {
        let f = fixture();
        symlink(&f.outside, f.root.join("etc")).unwrap();
        let beneath = Beneath::open(&f.root).unwrap();
        let dir = f.root.join("etc/kubernetes/manifests");
        assert!(beneath.remove_dir(&dir).is_err());
        assert!(f.outside.join("kubernetes/manifests").is_dir());
        assert!(beneath.remove_file(&f.root.join("etc/precious")).is_err());
        assert!(f.outside.join("precious").exists());
        assert!(beneath.empty_tree(&f.root.join("etc"), &[]).is_err());
        assert!(f.outside.join("precious").exists());
        // The symlink itself is a file entry: removing it leaves its target alone.
        assert!(beneath.remove_file(&f.root.join("etc")).unwrap());
        assert!(f.outside.join("precious").exists());
    }

    #[test]
    fn trees_are_emptied_without_following_links_and_keep_what_is_kept() {
        let f = fixture();
        let tree = f.root.join("var/lib/boot");
        fs::create_dir_all(tree.join("agent/pods")).unwrap();
        fs::write(tree.join("agent/pods/record.json"), "{}").unwrap();
        fs::write(tree.join("ledger.json"), "{}").unwrap();
        symlink(&f.outside, tree.join("link")).unwrap();
        let beneath = Beneath::open(&f.root).unwrap();
        assert!(beneath
            .empty_tree(&tree, &[&tree.join("ledger.json")])
            .unwrap());
        let left: Vec<_> = fs::read_dir(&tree)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, ["ledger.json"]);
        assert!(f.outside.join("precious").exists());
        assert!(!beneath
            .empty_tree(&tree, &[&tree.join("ledger.json")])
            .unwrap());
        assert!(beneath.remove_file(&tree.join("ledger.json")).unwrap());
        assert!(beneath.remove_dir(&tree).unwrap());
        assert!(!beneath.remove_dir(&tree).unwrap(), "already gone");
    }

    #[test]
    fn the_root_and_dot_dot_are_refused() {
        let f = fixture();
        let beneath = Beneath::open(&f.root).unwrap();
        assert!(beneath.empty_tree(&f.root, &[]).is_err());
        let escape = f.root.join("../outside");
        assert!(beneath.empty_tree(&escape, &[]).is_err());
        assert!(f.outside.join("precious").exists());
    }

    #[test]
    fn the_fallback_walk_refuses_symlinks_too() {
        let f = fixture();
        symlink(&f.outside, f.root.join("etc")).unwrap();
        let root = nix::fcntl::open(&f.root, OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let flags = OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW;
        let err = walk(
            root.as_fd(),
            &[OsStr::new("etc"), OsStr::new("kubernetes")],
            flags,
        );
        // O_DIRECTORY|O_NOFOLLOW on a symlink: ENOTDIR (or ELOOP), never its target.
        assert!(matches!(err, Err(Errno::ENOTDIR | Errno::ELOOP)), "{err:?}");
        fs::create_dir(f.root.join("var")).unwrap();
        assert!(walk(root.as_fd(), &[OsStr::new("var")], flags).is_ok());
    }
}
