//! Tests of the HTTP client against local servers on 127.0.0.1, port 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
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

/// Answers a request head with the bytes to send back, or `None` to hold the connection open
/// without answering.
type Responder = Arc<dyn Fn(&str) -> Option<Vec<u8>> + Send + Sync>;

/// `response: None` accepts and reads the request but never answers.
async fn serve(response: Option<Vec<u8>>, tls: Option<TlsAcceptor>) -> Server {
    serve_with(Arc::new(move |_: &str| response.clone()), tls).await
}

async fn serve_with(responder: Responder, tls: Option<TlsAcceptor>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, requests) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut silent = Vec::new();
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (tx, responder, tls) = (tx.clone(), responder.clone(), tls.clone());
            let conn = tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(tcp).await {
                            answer(stream, tx, responder).await
                        }
                    }
                    None => answer(tcp, tx, responder).await,
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
    responder: Responder,
) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let response = responder(&head);
    let _ = tx.send(head);
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

const UA: &str = "kube-probe/1.36";

fn request<'a>(port: u16, path: &'a str, headers: &'a [(String, String)]) -> HttpGet<'a> {
    HttpGet {
        scheme: Scheme::Http,
        host: "127.0.0.1",
        port,
        path,
        headers,
        user_agent: UA,
    }
}

async fn get_from(port: u16, path: &str) -> Result<HttpResponse, HttpError> {
    get(&request(port, path, &[]), LONG).await
}

fn action(port: u16, path: &str) -> ProbeAction {
    ProbeAction::HttpGet {
        scheme: Scheme::Http,
        host: "127.0.0.1".into(),
        port,
        path: path.into(),
        headers: vec![],
    }
}

/// The request line and the headers (names lower-cased) of a request head.
fn parse_head(head: &str) -> (String, Vec<(String, String)>) {
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (request_line, headers)
}

fn path_of(head: &str) -> String {
    parse_head(head)
        .0
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn status_200_is_success_and_body_is_read() {
    let server = serve(reply("200 OK", "", "ok"), None).await;
    let response = get_from(server.port, "/livez").await.unwrap();
    assert_eq!(
        response,
        HttpResponse {
            status: 200,
            body: b"ok".to_vec()
        }
    );
    assert_eq!(
        run(&action(server.port, "/livez"), LONG, &[], UA).await,
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
        run(&action(server.port, "/readyz"), LONG, &[], UA).await,
        ProbeResult::Failure("HTTP probe failed with statuscode: 500".into())
    );
}

#[tokio::test]
async fn a_redirect_to_another_host_is_not_followed_and_passes_with_a_warning() {
    let mut server = serve(
        reply(
            "302 Found",
            "Location: http://192.0.2.1/elsewhere\r\n",
            "moved",
        ),
        None,
    )
    .await;
    assert_eq!(
        run(&action(server.port, "/"), LONG, &[], UA).await,
        ProbeResult::Warning("Probe terminated redirects, Response body: moved".into())
    );
    assert_eq!(path_of(&server.requests.recv().await.unwrap()), "/");
    assert!(server.requests.try_recv().is_err(), "only one request sent");
}

#[tokio::test]
async fn redirects_to_the_same_host_are_followed() {
    // /a → /b (absolute path) → c (relative) → 200 on another port of the same host.
    let target = serve(reply("200 OK", "", "here"), None).await;
    let target_port = target.port;
    let mut server = serve_with(
        Arc::new(move |head: &str| match path_of(head).as_str() {
            "/a" => reply("301 Moved Permanently", "Location: /dir/b\r\n", ""),
            "/dir/b" => reply("307 Temporary Redirect", "Location: c?x=1\r\n", ""),
            "/dir/c?x=1" => reply(
                "302 Found",
                &format!("Location: http://127.0.0.1:{target_port}/final\r\n"),
                "",
            ),
            _ => reply("404 Not Found", "", ""),
        }),
        None,
    )
    .await;
    let response = get_from(server.port, "/a").await.unwrap();
    assert_eq!(
        (response.status, response.body.as_slice()),
        (200, &b"here"[..])
    );
    let mut seen = Vec::new();
    while let Ok(head) = server.requests.try_recv() {
        let (_, headers) = parse_head(&head);
        assert!(
            headers.contains(&("user-agent".into(), UA.into())),
            "{head}"
        );
        seen.push(path_of(&head));
    }
    assert_eq!(seen, ["/a", "/dir/b", "/dir/c?x=1"]);
    let mut target = target;
    let last = target.requests.recv().await.unwrap();
    assert_eq!(path_of(&last), "/final");
    let (_, headers) = parse_head(&last);
    assert!(
        headers.contains(&("host".into(), format!("127.0.0.1:{target_port}"))),
        "{last}"
    );
}

#[tokio::test]
async fn a_redirect_loop_fails_after_ten_requests() {
    let mut server = serve_with(
        Arc::new(|head: &str| {
            let n: u32 = path_of(head).trim_start_matches("/r").parse().unwrap_or(0);
            reply("302 Found", &format!("Location: /r{}\r\n", n + 1), "")
        }),
        None,
    )
    .await;
    let err = get_from(server.port, "/r0").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "Get \"http://127.0.0.1:{}/r10\": stopped after 10 redirects",
            server.port
        )
    );
    let mut count = 0;
    while server.requests.try_recv().is_ok() {
        count += 1;
    }
    assert_eq!(count, MAX_REQUESTS);
    assert!(matches!(
        run(&action(server.port, "/r0"), LONG, &[], UA).await,
        ProbeResult::Failure(m) if m.ends_with("stopped after 10 redirects")
    ));
}

#[test]
fn locations_resolve_like_go() {
    let base = Target {
        scheme: Scheme::Https,
        host: "127.0.0.1".into(),
        port: 6443,
        path: "/a/b/c?q=1".into(),
    };
    let resolved = |location: &str| {
        let (t, relative) = resolve(&base, location).unwrap();
        (t.url(), relative)
    };
    let https = |p: &str| format!("https://127.0.0.1:6443{p}");
    assert_eq!(resolved("/x"), (https("/x"), true));
    assert_eq!(resolved("d"), (https("/a/b/d"), true));
    assert_eq!(resolved("../d?z"), (https("/a/d?z"), true));
    assert_eq!(resolved("./"), (https("/a/b/"), true));
    assert_eq!(resolved("?y=2"), (https("/a/b/c?y=2"), true));
    assert_eq!(resolved("/../../x#frag"), (https("/x"), true));
    assert_eq!(
        resolved("//[::1]:8443/v"),
        ("https://[::1]:8443/v".into(), true)
    );
    assert_eq!(
        resolved("http://127.0.0.1/livez"),
        ("http://127.0.0.1:80/livez".into(), false)
    );
    assert_eq!(
        resolved("HTTPS://user@example.test"),
        ("https://example.test:443/".into(), false)
    );
    assert!(resolve(&base, "ftp://127.0.0.1/").is_err());
    assert!(resolve(&base, "http://127.0.0.1:http/").is_err());
}

#[tokio::test]
async fn sends_the_kubelets_headers() {
    let mut server = serve(reply("200 OK", "", ""), None).await;
    let headers = [("X-Probe".to_string(), "yes".to_string())];
    get(&request(server.port, "/healthz?verbose", &headers), LONG)
        .await
        .unwrap();
    let head = server.requests.recv().await.unwrap();
    let (line, mut headers) = parse_head(&head);
    headers.sort();
    assert_eq!(line, "GET /healthz?verbose HTTP/1.1");
    let port = server.port;
    let expected = [
        ("accept", "*/*".to_string()),
        ("connection", "close".to_string()),
        ("host", format!("127.0.0.1:{port}")),
        ("user-agent", UA.to_string()),
        ("x-probe", "yes".to_string()),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    assert_eq!(headers, expected, "{head}");
}

#[test]
fn the_user_agent_is_the_running_kubernetes_minor() {
    let version: crate::version::Version = "v1.36.2".parse().unwrap();
    assert_eq!(user_agent(&version), "kube-probe/1.36");
}

#[tokio::test]
async fn custom_host_user_agent_and_accept_replace_the_defaults() {
    let mut server = serve(reply("200 OK", "", ""), None).await;
    let headers = [
        ("host".to_string(), "example.test".to_string()),
        ("Accept".to_string(), String::new()),
        ("user-agent".to_string(), "mine/1".to_string()),
    ];
    get(&request(server.port, "/", &headers), LONG)
        .await
        .unwrap();
    let head = server.requests.recv().await.unwrap();
    let (_, headers) = parse_head(&head);
    let values = |name: &str| -> Vec<&str> {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("host"), ["example.test"], "{head}");
    assert_eq!(values("user-agent"), ["mine/1"], "{head}");
    assert!(
        values("accept").is_empty(),
        "an empty Accept removes it: {head}"
    );
}

#[tokio::test]
async fn header_injection_is_refused() {
    let headers = [("X-Bad".to_string(), "a\r\nInjected: 1".to_string())];
    let err = get(&request(1, "/", &headers), LONG).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Get \"http://127.0.0.1:1/\": net/http: invalid header field value for \"X-Bad\""
    );
    let headers = [("X Bad".to_string(), "a".to_string())];
    let err = get(&request(1, "/", &headers), LONG).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("invalid header field name \"X Bad\""),
        "{err}"
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
    let probe = HttpGet {
        scheme: Scheme::Https,
        ..request(server.port, "/livez", &[])
    };
    let response = get(&probe, LONG).await.unwrap();
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
    let probe = HttpGet {
        scheme: Scheme::Https,
        ..request(port, "/", &[])
    };
    let err = get(&probe, LONG).await.unwrap_err();
    task.abort();
    assert!(err.to_string().contains(": tls: "), "{err}");
}

#[tokio::test]
async fn silent_server_times_out_within_the_probe_timeout() {
    let server = serve(None, None).await;
    let timeout = Duration::from_millis(200);
    let begun = Instant::now();
    let err = get(&request(server.port, "/livez", &[]), timeout)
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
    let probe = HttpGet {
        scheme: Scheme::Https,
        ..request(port, "/livez", &[])
    };
    let err = get(&probe, LONG).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Get \"https://127.0.0.1:{port}/livez\": dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
}

#[tokio::test]
async fn body_is_capped_at_10kib_and_a_longer_one_still_passes() {
    let big = "x".repeat(3 * MAX_BODY);
    let server = serve(reply("200 OK", "", &big), None).await;
    let response = get_from(server.port, "/").await.unwrap();
    assert_eq!(response.body.len(), MAX_BODY);
    assert_eq!(
        run(&action(server.port, "/"), LONG, &[], UA).await,
        ProbeResult::Success
    );
}

#[tokio::test]
async fn chunked_body_and_interim_response_are_decoded() {
    let raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
                4\r\nnot \r\n5;ext=1\r\nready\r\n0\r\n\r\n";
    let server = serve(Some(raw.to_vec()), None).await;
    let response = get_from(server.port, "/").await.unwrap();
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
    let err = get_from(server.port, "/").await.unwrap_err();
    assert!(err.to_string().contains("malformed HTTP response"), "{err}");
}

#[tokio::test]
async fn a_closed_connection_without_an_answer_is_eof() {
    let server = serve(Some(Vec::new()), None).await;
    let err = get_from(server.port, "/").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Get \"http://127.0.0.1:{}/\": EOF", server.port)
    );
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
