//! `grpc` probes: the standard health protocol `grpc.health.v1.Health/Check` over plaintext
//! HTTP/2 (the kubelet never uses TLS for gRPC probes); success is `SERVING`.

use std::time::Duration;

use super::run::ProbeResult;

/// Calls `Health/Check` for `service` (empty: the server as a whole) on `host:port`.
pub async fn check(host: &str, port: u16, service: Option<&str>, timeout: Duration) -> ProbeResult {
    let _ = (host, port, service, timeout);
    todo!()
}
