//! Reading the host for the preflight checks, behind [`HostProbe`] so that tests can answer
//! instead of the machine. [`SystemProbe`] is the real one: it reads files, binds ports (without
//! listening), asks the kernel for the uid, CPUs and RAM, and runs `<binary> --version`.
//! Every path it is given is already resolved (rooted) by the caller.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use super::decide::DirState;
use crate::host::facts::{self, VersionError};
use crate::version::Version;

/// What the preflight checks need to know about the host. `Sync` so that the binaries'
/// `--version` runs can proceed in parallel.
pub trait HostProbe: Sync {
    fn uid(&self) -> u32;
    /// CPUs this process may run on (Go's `runtime.NumCPU`: the affinity mask).
    fn cpu_count(&self) -> usize;
    /// Total RAM in bytes (sysinfo).
    fn total_memory(&self) -> io::Result<u64>;
    fn read_to_string(&self, path: &Path) -> io::Result<String>;
    /// Whether anything exists at `path` (kubeadm uses `os.Stat`, which follows symlinks).
    fn exists(&self, path: &Path) -> bool;
    fn dir_state(&self, path: &Path) -> io::Result<DirState>;
    /// Tries to bind TCP `addr` and releases it at once.
    fn bind(&self, addr: SocketAddr) -> io::Result<()>;
    /// The first executable `name` in `dirs`, else in `PATH`.
    fn find_binary(&self, dirs: &[PathBuf], name: &str) -> Option<PathBuf>;
    /// `binary --version`, bounded in time.
    fn binary_version(&self, binary: &Path) -> Result<Version, VersionError>;
}

/// The real host.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl HostProbe for SystemProbe {
    fn uid(&self) -> u32 {
        nix::unistd::getuid().as_raw()
    }

    fn cpu_count(&self) -> usize {
        use nix::sched::{sched_getaffinity, CpuSet};
        match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
            Ok(set) => (0..CpuSet::count())
                .filter(|&cpu| set.is_set(cpu).unwrap_or(false))
                .count(),
            Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    fn total_memory(&self) -> io::Result<u64> {
        nix::sys::sysinfo::sysinfo()
            .map(|info| info.ram_total())
            .map_err(io::Error::from)
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn dir_state(&self, path: &Path) -> io::Result<DirState> {
        match std::fs::read_dir(path) {
            Ok(mut entries) => Ok(if entries.next().is_some() {
                DirState::NotEmpty
            } else {
                DirState::Empty
            }),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(DirState::Missing),
            Err(err) => Err(err),
        }
    }

    fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        bind_without_listening(addr)
    }

    fn find_binary(&self, dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
        facts::find_binary(dirs, name).or_else(|| {
            let path = std::env::var_os("PATH")?;
            facts::find_binary(&std::env::split_paths(&path).collect::<Vec<_>>(), name)
        })
    }

    fn binary_version(&self, binary: &Path) -> Result<Version, VersionError> {
        facts::binary_version(binary)
    }
}

/// Binds `addr` with `SO_REUSEADDR` as Go's `net.Listen` does (so sockets in TIME_WAIT from an
/// earlier run do not count) but never listens: Linux refuses the bind when another socket
/// listens on the port at a conflicting address, and nothing is ever reachable through ours.
fn bind_without_listening(addr: SocketAddr) -> io::Result<()> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage,
    };
    use std::os::fd::AsRawFd;

    let family = match addr.ip() {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_loopback_listener_blocks_the_wildcard_bind() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let probe = SystemProbe;
        let err = probe
            .bind(SocketAddr::new([127, 0, 0, 1].into(), port))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        let err = probe
            .bind(SocketAddr::new([0, 0, 0, 0].into(), port))
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(held);
        // Released: binding (without listening) succeeds again.
        probe
            .bind(SocketAddr::new([127, 0, 0, 1].into(), port))
            .unwrap();
    }

    #[test]
    fn directories_are_missing_empty_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let probe = SystemProbe;
        let sub = dir.path().join("etcd");
        assert_eq!(probe.dir_state(&sub).unwrap(), DirState::Missing);
        std::fs::create_dir(&sub).unwrap();
        assert_eq!(probe.dir_state(&sub).unwrap(), DirState::Empty);
        std::fs::write(sub.join("member"), "").unwrap();
        assert_eq!(probe.dir_state(&sub).unwrap(), DirState::NotEmpty);
    }

    #[test]
    fn the_kernel_answers() {
        let probe = SystemProbe;
        assert!(probe.cpu_count() >= 1);
        assert!(probe.total_memory().unwrap() > 0);
    }
}
