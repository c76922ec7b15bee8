//! Runs one probe action once, bounded by its timeout, and turns the outcome into a
//! [`ProbeResult`] with the kubelet's failure messages.

use std::time::Duration;

use super::spec::ProbeAction;

/// The outcome of one probe run, as the kubelet's prober reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    /// Why it failed, worded like the kubelet's event message.
    Failure(String),
}

/// Runs `action` once; the whole run (connect, TLS, request, response) is bounded by `timeout`.
/// `env` is the container's environment, used by exec probes only.
pub async fn run(action: &ProbeAction, timeout: Duration, env: &[(String, String)]) -> ProbeResult {
    match action {
        ProbeAction::HttpGet {
            scheme,
            host,
            port,
            path,
            headers,
        } => match super::http::get(*scheme, host, *port, path, headers, timeout).await {
            Ok(response) => http_result(&response),
            Err(e) => ProbeResult::Failure(e.to_string()),
        },
        ProbeAction::TcpSocket { host, port } => super::tcp::check(host, *port, timeout).await,
        ProbeAction::Exec { command } => super::exec::check(command, env, timeout).await,
        ProbeAction::Grpc {
            host,
            port,
            service,
        } => super::grpc::check(host, *port, service.as_deref(), timeout).await,
    }
}

/// `pkg/probe/http`: a status in [200, 400) passes (a redirect to another host counts as success
/// for the kubelet too, with a warning; `boot` does not follow redirects at all).
fn http_result(response: &super::http::HttpResponse) -> ProbeResult {
    if (200..400).contains(&response.status) {
        ProbeResult::Success
    } else {
        ProbeResult::Failure(format!(
            "HTTP probe failed with statuscode: {}",
            response.status
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn dispatches_tcp_and_exec() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = ProbeAction::TcpSocket {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(run(&tcp, LONG, &[]).await, ProbeResult::Success);

        let exec = ProbeAction::Exec {
            command: vec!["sh".into(), "-c".into(), "test \"$X\" = 1".into()],
        };
        assert_eq!(
            run(&exec, LONG, &[("X".into(), "1".into())]).await,
            ProbeResult::Success
        );
        assert_eq!(
            run(&exec, LONG, &[]).await,
            ProbeResult::Failure("exit status 1".into())
        );
    }

    #[test]
    fn http_status_classes() {
        let result = |status| {
            http_result(&super::super::http::HttpResponse {
                status,
                body: vec![],
            })
        };
        assert_eq!(result(200), ProbeResult::Success);
        assert_eq!(result(399), ProbeResult::Success);
        assert_eq!(
            result(199),
            ProbeResult::Failure("HTTP probe failed with statuscode: 199".into())
        );
        assert_eq!(
            result(400),
            ProbeResult::Failure("HTTP probe failed with statuscode: 400".into())
        );
    }
}
