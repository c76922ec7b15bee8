//! The one way `boot` finds an executable: the binary directories first, then the directories of
//! a `PATH` value, the first regular file with an execute bit winning (Go's `exec.LookPath`, as
//! the kubelet and runc use it). Empty `PATH` entries are skipped rather than meaning the current
//! directory: a root process must not run what happens to lie in its working directory.
//!
//! Touches: stats the candidate paths (read only).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The `PATH` a process gets when there is none to pass on (Debian's and containerd's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A regular file (symlinks followed) with at least one execute bit.
pub fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The directories of a `PATH` value, empty entries skipped.
pub fn path_dirs(path_var: &str) -> Vec<PathBuf> {
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .collect()
}

/// `name` itself when it contains a `/`, else the first executable `<dir>/<name>` of `dirs`.
/// `is_executable` is the file-system check, passed in so that callers can stay pure.
pub fn look_path_with(
    name: &str,
    dirs: &[PathBuf],
    is_executable: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    if name.contains('/') {
        let path = PathBuf::from(name);
        return is_executable(&path).then_some(path);
    }
    dirs.iter()
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// [`look_path_with`] on the real file system.
pub fn look_path(name: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    look_path_with(name, dirs, is_executable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_executable_wins_and_slashes_are_taken_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("tool"), "").unwrap(); // not executable
        std::fs::write(b.join("tool"), "").unwrap();
        std::fs::set_permissions(b.join("tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            look_path("tool", &[a.clone(), b.clone()]),
            Some(b.join("tool"))
        );
        assert_eq!(look_path(&a.join("tool").display().to_string(), &[]), None);
        assert_eq!(look_path("", std::slice::from_ref(&b)), None);
        assert_eq!(
            path_dirs("/x::/y:"),
            [PathBuf::from("/x"), PathBuf::from("/y")]
        );
    }
}
