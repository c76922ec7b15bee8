//! Tests of the HTTP client against local servers on 127.0.0.1, port 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::*;
use crate::probe::{run, ProbeAction, ProbeResult};

const LONG: Duration = Duration::from_secs(5);

/// A local server answering every connection with `response`; the request heads it received
/// come out of `requests`. The accept loop is aborted on drop.
struct Server {
    port: u16,
    requests: mpsc::UnboundedReceiver<String>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `response: None` accepts and reads the request but never answers.
async fn serve(response: Option<Vec<u8>>, tls: Option<TlsAcceptor>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, requests) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut silent = Vec::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (tx, response, tls) = (tx.clone(), response.clone(), tls.clone());
            let conn = tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            answer(stream, tx, response).await
                        }
                    }
                    None => answer(tcp, tx, response).await,
                }
            });
            silent.push(conn);
        }
    });
    Server {
        port,
        requests,
        task,
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    tx: mpsc::UnboundedSender<String>,
    response: Option<Vec<u8>>,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
    match response {
        Some(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        // Hold the connection open without answering until the test ends.
        None => std::future::pending::<()>().await,
    }
}

fn reply(status: &str, extra_headers: &str, body: &str) -> Option<Vec<u8>> {
    Some(
        format!(
            "HTTP/1.1 {status}\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn action(port: u16, path: &str, headers: &[(&str, &str)]) -> ProbeAction {
    ProbeAction::HttpGet {
        scheme: Scheme::Http,
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn status_200_is_success_and_body_is_read() {
    let server = serve(reply("200 OK", "", "ok"), None).await;
    let response = get(Scheme::Http, "127.0.0.1", server.port, "/livez", &[], LONG)
        .await
        .unwrap();
    assert_eq!(
        response,
        HttpResponse {
            status: 200,
            body: b"ok".to_vec()
        }
    );
    assert_eq!(
        run(&action(server.port, "/livez", &[]), LONG, &[]).await,
        ProbeResult::Success
    );
}

#[tokio::test]
async fn status_500_fails_with_the_kubelets_message() {
    let server = serve(
        reply("500 Internal Server Error", "", "[-]etcd failed"),
        None,
    )
    .await;
    assert_eq!(
        run(&action(server.port, "/readyz", &[]), LONG, &[]).await,
        ProbeResult::Failure("HTTP probe failed with statuscode: 500".into())
    );
}

#[tokio::test]
async fn redirect_counts_as_success_and_is_not_followed() {
    let server = serve(
        reply("302 Found", "Location: http://192.0.2.1/elsewhere\r\n", ""),
        None,
    )
    .await;
    assert_eq!(
        run(&action(server.port, "/", &[]), LONG, &[]).await,
        ProbeResult::Success
    );
}

#[tokio::test]
async fn sends_the_kubelets_headers() {
    let mut server = serve(reply("200 OK", "", ""), None).await;
    get(
        Scheme::Http,
        "127.0.0.1",
        server.port,
        "/healthz?verbose",
        &[("X-Probe".into(), "yes".into())],
        LONG,
    )
    .await
    .unwrap();
    let head = server.requests.recv().await.unwrap();
    let port = server.port;
    assert_eq!(
        head,
        format!(
            "GET /healthz?verbose HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.34\r\n\
             Accept: */*\r\nX-Probe: yes\r\nConnection: close\r\n\r\n"
        )
    );
}

#[tokio::test]
async fn custom_host_and_accept_replace_the_defaults() {
    let mut server = serve(reply("200 OK", "", ""), None).await;
    let headers = [
        ("Host".to_string(), "example.test".to_string()),
        ("Accept".to_string(), String::new()),
    ];
    get(Scheme::Http, "127.0.0.1", server.port, "/", &headers, LONG)
        .await
        .unwrap();
    let head = server.requests.recv().await.unwrap();
    assert!(head.contains("\r\nHost: example.test\r\n"), "{head}");
    assert_eq!(head.matches("Host:").count(), 1, "{head}");
    assert!(
        !head.contains("Accept"),
        "an empty Accept removes the header: {head}"
    );
}

#[tokio::test]
async fn header_injection_is_refused() {
    let headers = [("X-Bad".to_string(), "a\r\nInjected: 1".to_string())];
    let err = get(Scheme::Http, "127.0.0.1", 1, "/", &headers, LONG)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Get \"http://127.0.0.1:1/\": net/http: invalid header field value for \"X-Bad\""
    );
}

#[tokio::test]
async fn https_with_a_self_signed_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    let server = serve(
        reply("200 OK", "", "ok"),
        Some(TlsAcceptor::from(Arc::new(config))),
    )
    .await;
    let response = get(Scheme::Https, "127.0.0.1", server.port, "/livez", &[], LONG)
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok");
}

#[tokio::test]
async fn https_against_plain_http_fails() {
    // A plain HTTP server answers a ClientHello with a 400, as Go's does.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let _ = tcp.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n").await;
        let _ = tcp.shutdown().await;
    });
    let err = get(Scheme::Https, "127.0.0.1", port, "/", &[], LONG)
        .await
        .unwrap_err();
    task.abort();
    assert!(err.to_string().contains(": tls: "), "{err}");
}

#[tokio::test]
async fn silent_server_times_out_within_the_probe_timeout() {
    let server = serve(None, None).await;
    let timeout = Duration::from_millis(200);
    let begun = Instant::now();
    let err = get(
        Scheme::Http,
        "127.0.0.1",
        server.port,
        "/livez",
        &[],
        timeout,
    )
    .await
    .unwrap_err();
    let took = begun.elapsed();
    assert!(took >= timeout && took < timeout * 5, "took {took:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "Get \"http://127.0.0.1:{}/livez\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            server.port
        )
    );
}

#[tokio::test]
async fn refused_connection_reads_like_go() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = get(Scheme::Https, "127.0.0.1", port, "/livez", &[], LONG)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Get \"https://127.0.0.1:{port}/livez\": dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
}

#[tokio::test]
async fn body_is_capped_at_10kb() {
    let big = "x".repeat(3 * MAX_BODY);
    let server = serve(reply("200 OK", "", &big), None).await;
    let response = get(Scheme::Http, "127.0.0.1", server.port, "/", &[], LONG)
        .await
        .unwrap();
    assert_eq!(response.body.len(), MAX_BODY);
}

#[tokio::test]
async fn chunked_body_and_interim_response_are_decoded() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
                4\r\nnot \r\n5;ext=1\r\nready\r\n0\r\n\r\n";
    let server = serve(Some(raw.to_vec()), None).await;
    let response = get(Scheme::Http, "127.0.0.1", server.port, "/", &[], LONG)
        .await
        .unwrap();
    assert_eq!(
        response,
        HttpResponse {
            status: 503,
            body: b"not ready".to_vec()
        }
    );
}

#[tokio::test]
async fn garbage_response_is_an_error() {
    let server = serve(Some(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()), None).await;
    let err = get(Scheme::Http, "127.0.0.1", server.port, "/", &[], LONG)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("malformed HTTP response"), "{err}");
}

#[test]
fn urls_bracket_ipv6_hosts() {
    assert_eq!(
        url(Scheme::Https, "::1", 6443, "/livez"),
        "https://[::1]:6443/livez"
    );
    assert_eq!(
        url(Scheme::Http, "[::1]", 2381, "/readyz"),
        "http://[::1]:2381/readyz"
    );
    assert_eq!(
        url(Scheme::Http, "10.0.0.1", 2381, "/"),
        "http://10.0.0.1:2381/"
    );
}
