//! Loopback ports for tests that run in parallel: each port is handed out once per machine at a
//! time, and none is one the kernel could hand to someone else in the meantime.
//!
//! The old helper bound port 0, read the port and closed the socket. Two things then went wrong
//! when tests ran in parallel: the kernel's next `bind(0)` in another test may return the same
//! port (it picks among ~14 000 ports of one parity: a few hundred ports per run collide by the
//! birthday rule), and any outgoing connection (a probe, `kubectl`, the API server's to etcd) may
//! take the released port as its source port before the component binds it. Ports here come from
//! below the kernel's ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), so no automatic
//! assignment ever uses them, each is locked with `flock` on `/tmp/boot-test-ports/<port>` for the
//! life of the test process (other test processes of this or another checkout skip it), and a
//! bind checks that nothing else listens there.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Mutex;

/// Ports under this process's locks (the files stay open until it exits).
static TAKEN: Mutex<Vec<(u16, File)>> = Mutex::new(Vec::new());

/// A loopback port nothing uses, reserved for this test process.
pub fn free_port() -> u16 {
    let (low, high) = range();
    let span = u32::from(high - low);
    // A random start, so parallel test processes rarely contend for the same locks.
    let start = rand::random::<u32>() % span;
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    for step in 0..span {
        let port = low + ((start + step) % span) as u16;
        if taken.iter().any(|(p, _)| *p == port) {
            continue;
        }
        let Some(lock) = lock(port) else { continue };
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue; // something else on this machine listens there
        }
        taken.push((port, lock));
        return port;
    }
    panic!("no free loopback port in {low}..{high}");
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    (0..n).map(|_| free_port()).collect()
}

/// The ports below the ephemeral range, above the well-known and the common service ports.
fn range() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    (20000, ephemeral_low.max(20001))
}

fn lock(port: u16) -> Option<File> {
    let dir = std::env::temp_dir().join("boot-test-ports");
    std::fs::create_dir_all(&dir).ok()?;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join(port.to_string()))
        .ok()?;
    // SAFETY: flock on a file descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}
