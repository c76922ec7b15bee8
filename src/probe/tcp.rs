//! `tcpSocket` probes: success is a TCP connection established within the timeout.

use std::time::Duration;

use super::run::ProbeResult;

/// Connects to `host:port` and closes the connection at once.
pub async fn check(host: &str, port: u16, timeout: Duration) -> ProbeResult {
    let _ = (host, port, timeout);
    todo!()
}
