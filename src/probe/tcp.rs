//! `tcpSocket` probes: success is a TCP connection established within the timeout
//! (`pkg/probe/tcp`). Also the dialer of the HTTP and gRPC probes, with Go's error wording.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use super::http::host_port;
use super::run::ProbeResult;

/// Connects to `host:port` and closes the connection at once.
pub async fn check(host: &str, port: u16, timeout: Duration) -> ProbeResult {
    let addr = host_port(host, port);
    match tokio::time::timeout(timeout, dial(host, port)).await {
        Ok(Ok(_stream)) => ProbeResult::Success,
        Ok(Err(e)) => ProbeResult::Failure(e),
        Err(_) => ProbeResult::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// Resolves `host` (an IP literal, possibly bracketed, or a name) and connects to the first
/// address that accepts. Errors read like Go's `net.Dial`:
/// `dial tcp 127.0.0.1:6443: connect: connection refused`.
pub async fn dial(host: &str, port: u16) -> Result<TcpStream, String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("dial tcp: lookup {bare}: {}", os_error_text(&e)))?
            .collect(),
    };
    let mut last = format!("dial tcp: lookup {bare}: no such host");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("dial tcp {addr}: connect: {}", os_error_text(&e)),
        }
    }
    Err(last)
}

/// Go prints errno strings in lower case without the code ("connection refused"); std prints
/// "Connection refused (os error 111)".
pub(crate) fn os_error_text(e: &io::Error) -> String {
    let text = match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_port_succeeds() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            check("127.0.0.1", port, Duration::from_secs(2)).await,
            ProbeResult::Success
        );
    }

    #[tokio::test]
    async fn closed_port_fails_like_go() {
        // Bind then drop to get a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let result = check("127.0.0.1", port, Duration::from_secs(2)).await;
        assert_eq!(
            result,
            ProbeResult::Failure(format!(
                "dial tcp 127.0.0.1:{port}: connect: connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn ipv6_loopback_bracketed_or_not() {
        let Ok(listener) = tokio::net::TcpListener::bind("[::1]:0").await else {
            return; // no IPv6 loopback on this machine
        };
        let port = listener.local_addr().unwrap().port();
        assert_eq!(
            check("::1", port, Duration::from_secs(2)).await,
            ProbeResult::Success
        );
        assert_eq!(
            check("[::1]", port, Duration::from_secs(2)).await,
            ProbeResult::Success
        );
    }
}
