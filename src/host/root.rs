//! The host root: every host path `boot` touches (`/etc/kubernetes`, `/var/lib/etcd`,
//! `/var/log/pods`, `/run/boot`, …) is resolved through one [`HostRoot`], so that `--root DIR`
//! moves all of them under `DIR` and tests run in temporary roots (design §4).

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoot {
    prefix: PathBuf,
}

impl HostRoot {
    /// The real root, `/`. Only `main`-level code builds this one.
    pub fn system() -> Self {
        HostRoot {
            prefix: PathBuf::from("/"),
        }
    }

    /// A root under `dir`; relative paths are made absolute against the current directory so
    /// that paths written into manifests stay valid for the processes that read them.
    pub fn under(dir: impl AsRef<Path>) -> std::io::Result<Self> {
        let dir = dir.as_ref();
        let prefix = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            std::env::current_dir()?.join(dir)
        };
        Ok(HostRoot {
            prefix: normalize(&prefix),
        })
    }

    pub fn is_system(&self) -> bool {
        self.prefix == Path::new("/")
    }

    /// The directory everything lives under (`/` for the real root).
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// Maps a host path such as `/etc/kubernetes/pki` to where it lives under this root. Paths
    /// already under the root are returned unchanged, so resolving twice is harmless.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let host_path = normalize(host_path.as_ref());
        if self.is_system() || host_path.starts_with(&self.prefix) {
            return host_path;
        }
        let relative = host_path.strip_prefix("/").unwrap_or(&host_path);
        self.prefix.join(relative)
    }

    /// The inverse of [`HostRoot::path`]: the host path a rooted path stands for.
    pub fn host_path(&self, rooted: &Path) -> PathBuf {
        match rooted.strip_prefix(&self.prefix) {
            Ok(rest) if !self.is_system() => Path::new("/").join(rest),
            _ => rooted.to_path_buf(),
        }
    }
}

/// Removes `.` and resolves `..` lexically, without touching the file system (symlinks are never
/// followed here; reset checks them separately).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_root_is_identity() {
        let root = HostRoot::system();
        assert_eq!(
            root.path("/etc/kubernetes/pki"),
            PathBuf::from("/etc/kubernetes/pki")
        );
    }

    #[test]
    fn prefixed_root_moves_paths_and_is_idempotent() {
        let root = HostRoot::under("/tmp/r").unwrap();
        let pki = root.path("/etc/kubernetes/pki");
        assert_eq!(pki, PathBuf::from("/tmp/r/etc/kubernetes/pki"));
        assert_eq!(root.path(&pki), pki);
        assert_eq!(root.host_path(&pki), PathBuf::from("/etc/kubernetes/pki"));
        assert_eq!(
            root.path("/etc/../var/./lib"),
            PathBuf::from("/tmp/r/var/lib")
        );
    }
}
