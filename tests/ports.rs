//! The test port allocator (`tests/common/ports.rs`) that lets the suite run in parallel: ports
//! never repeat within a test process, lie below the kernel's ephemeral range, are free when
//! handed out, and are skipped by another process while this one holds them.

#[path = "common/ports.rs"]
mod ports;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::process::Command;

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// What a whole run takes, from several threads at once: no port twice, none ephemeral.
#[test]
fn ports_are_distinct_free_and_outside_the_ephemeral_range() {
    let threads: Vec<_> = (0..4)
        .map(|_| std::thread::spawn(|| ports::free_ports(150)))
        .collect();
    let all: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let distinct: BTreeSet<u16> = all.iter().copied().collect();
    assert_eq!(distinct.len(), all.len(), "a port was handed out twice");
    let low = ephemeral_low();
    assert!(all.iter().all(|p| *p < low), "ephemeral ports handed out");
    for port in all.iter().take(50) {
        TcpListener::bind(("127.0.0.1", *port)).unwrap_or_else(|e| panic!("port {port}: {e}"));
    }
}

/// Another test process (here `flock(1)`, holding the same lock file) keeps its port.
#[test]
fn a_port_locked_by_another_process_is_skipped() {
    let mine = ports::free_port();
    let lock = std::env::temp_dir()
        .join("boot-test-ports")
        .join(mine.to_string());
    // The lock is held by this process: a second process cannot take it.
    let status = Command::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(&lock)
        .arg("true")
        .status();
    match status {
        Ok(status) => assert!(!status.success(), "port {mine} was not locked"),
        Err(e) => panic!("flock(1) from util-linux: {e}"),
    }
}
