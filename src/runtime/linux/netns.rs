//! Pod network namespaces: a pod without `hostNetwork: true` gets a namespace of its own with only
//! loopback up (pod networking through CNI comes later, design §8), bind-mounted at
//! `/run/boot/netns/<pod uid>` so it outlives the agent and a restarted agent finds it again, as
//! `ip netns` keeps its namespaces under `/run/netns`.
//!
//! Touches: `<root>/run/boot/netns/` (the bind mounts).

use std::fs;
use std::io;
use std::path::Path;

/// Whether `path` is a bind-mounted namespace (a previous agent's sandbox): `statfs` reports
/// `NSFS_MAGIC` (`linux/magic.h`) for it.
pub fn is_mounted(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Creates a network namespace with loopback up, bind-mounted at `path` (kept when it exists).
pub fn create(path: &Path) -> io::Result<()> {
    if is_mounted(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::File::create(path)?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) changes only the calling thread, so a short-lived thread does it and
    // the agent's own threads stay in the host namespace.
    let result = std::thread::spawn(move || -> io::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )?;
        loopback_up()
    })
    .join()
    .map_err(|_| io::Error::other("the namespace thread panicked"))?;
    if result.is_err() {
        remove(path);
    }
    result
}

/// Unmounts and removes a pod's namespace file; its processes must be gone.
pub fn remove(path: &Path) {
    let _ = nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH);
    let _ = fs::remove_file(path);
}

/// `ip link set lo up` in the calling thread's namespace (SIOCGIFFLAGS / SIOCSIFFLAGS).
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq whose name is set below; the fd is closed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut result = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req);
        if result == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &mut req);
        }
        let err = io::Error::last_os_error();
        libc::close(fd);
        if result < 0 {
            return Err(err);
        }
    }
    Ok(())
}
