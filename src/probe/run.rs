//! Runs one probe action once, bounded by its timeout, and turns the outcome into a
//! [`ProbeResult`] with the kubelet's failure messages.

use std::time::Duration;

use super::spec::ProbeAction;

/// The outcome of one probe run, as the kubelet's prober reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    /// Counts as success, with something worth telling (the kubelet's `probe.Warning`: an
    /// `httpGet` answered with a redirect that was not followed).
    Warning(String),
    /// Why it failed, worded like the kubelet's event message.
    Failure(String),
}

impl ProbeResult {
    /// Success or warning: what the thresholds count as a success.
    pub fn passed(&self) -> bool {
        !matches!(self, ProbeResult::Failure(_))
    }
}

/// Runs `action` once; the whole run (connect, TLS, request, response) is bounded by `timeout`.
/// `env` is the container's environment, used by exec probes only; `user_agent` is sent by HTTP
/// and gRPC probes (see [`super::http::user_agent`]).
pub async fn run(
    action: &ProbeAction,
    timeout: Duration,
    env: &[(String, String)],
    user_agent: &str,
) -> ProbeResult {
    match action {
        ProbeAction::HttpGet {
            scheme,
            host,
            port,
            path,
            headers,
        } => {
            let request = super::http::HttpGet {
                scheme: *scheme,
                host,
                port: *port,
                path,
                headers,
                user_agent,
            };
            match super::http::get(&request, timeout).await {
                Ok(response) => http_result(&response),
                Err(e) => ProbeResult::Failure(e.to_string()),
            }
        }
        ProbeAction::TcpSocket { host, port } => super::tcp::check(host, *port, timeout).await,
        ProbeAction::Exec { command } => super::exec::check(command, env, timeout).await,
        ProbeAction::Grpc {
            host,
            port,
            service,
        } => super::grpc::check(host, *port, service.as_deref(), user_agent, timeout).await,
    }
}

/// `pkg/probe/http`: a status in [200, 300) passes; one in [300, 400) — a redirect that was not
/// followed — passes with a warning; anything else fails. The body is never in the message
/// (k/k#99425).
fn http_result(response: &super::http::HttpResponse) -> ProbeResult {
    if (200..300).contains(&response.status) {
        ProbeResult::Success
    } else if (300..400).contains(&response.status) {
        ProbeResult::Warning(format!(
            "Probe terminated redirects, Response body: {}",
            String::from_utf8_lossy(&response.body)
        ))
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
    const UA: &str = "kube-probe/1.36";

    #[tokio::test]
    async fn dispatches_tcp_and_exec() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let tcp = ProbeAction::TcpSocket {
            host: "127.0.0.1".into(),
            port,
        };
        assert_eq!(run(&tcp, LONG, &[], UA).await, ProbeResult::Success);

        let exec = ProbeAction::Exec {
            command: vec!["sh".into(), "-c".into(), "test \"$X\" = 1".into()],
        };
        assert_eq!(
            run(&exec, LONG, &[("X".into(), "1".into())], UA).await,
            ProbeResult::Success
        );
        assert_eq!(
            run(&exec, LONG, &[], UA).await,
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
        assert_eq!(result(299), ProbeResult::Success);
        assert!(
            matches!(result(302), ProbeResult::Warning(m) if m.starts_with("Probe terminated redirects"))
        );
        assert!(result(399).passed());
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
