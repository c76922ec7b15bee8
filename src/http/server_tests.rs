//! The accept loop against misbehaving clients and listeners, on 127.0.0.1 port 0.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use http::StatusCode;
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::*;
use crate::http::client;

const GENEROUS: Limits = Limits {
    max_connections: 64,
    request_deadline: Duration::from_secs(10),
};

/// A server task aborted on drop.
struct Running {
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn ok_handler(_: Request<Incoming>) -> Response<Full<Bytes>> {
    respond(StatusCode::OK, "text/plain", "ok")
}

async fn start<L: Listener>(listener: L, limits: Limits) -> Running {
    let task = tokio::spawn(serve(listener, limits, ok_handler, |_| {}));
    Running { task }
}

async fn get(port: u16) -> client::BoundedResponse {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let request = Request::get("/healthz")
        .header("host", "localhost")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), client::send(tcp, request, 1024))
        .await
        .expect("answered in time")
        .expect("answered")
}

/// Fails `failures` accepts with EMFILE (as when the process is out of descriptors), then
/// accepts from a real listener.
struct FlakyListener {
    inner: TcpListener,
    failures: AtomicUsize,
    errors_seen: Arc<AtomicUsize>,
}

impl Listener for FlakyListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<Self::Io> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            self.errors_seen.fetch_add(1, Ordering::SeqCst);
            return Err(io::Error::from_raw_os_error(libc::EMFILE));
        }
        Listener::accept(&self.inner).await
    }
}

#[tokio::test]
async fn accept_errors_back_off_and_the_loop_goes_on() {
    let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = inner.local_addr().unwrap().port();
    let errors_seen = Arc::new(AtomicUsize::new(0));
    let reported = Arc::new(AtomicUsize::new(0));
    let listener = FlakyListener {
        inner,
        failures: AtomicUsize::new(4),
        errors_seen: errors_seen.clone(),
    };
    let counted = reported.clone();
    let begun = Instant::now();
    let task = tokio::spawn(serve(listener, GENEROUS, ok_handler, move |e| {
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
        counted.fetch_add(1, Ordering::SeqCst);
    }));
    let _server = Running { task };
    let response = get(port).await;
    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(errors_seen.load(Ordering::SeqCst), 4);
    // One report per run of failures, not one per retry.
    assert_eq!(reported.load(Ordering::SeqCst), 1);
    // 5 + 10 + 20 + 40 ms of back-off before the good accept.
    assert!(
        begun.elapsed() >= Duration::from_millis(75),
        "{:?}",
        begun.elapsed()
    );
}

#[test]
fn accept_backoff_doubles_from_5ms_to_1s() {
    let mut delay = None;
    let mut seen = Vec::new();
    for _ in 0..10 {
        let next = next_backoff(delay);
        seen.push(next.as_millis());
        delay = Some(next);
    }
    assert_eq!(seen, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
}

#[tokio::test]
async fn a_trickling_client_is_cut_off_at_the_request_deadline() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let deadline = Duration::from_millis(300);
    let _server = start(
        listener,
        Limits {
            max_connections: 4,
            request_deadline: deadline,
        },
    )
    .await;
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let begun = Instant::now();
    // One byte every 50 ms, well inside any per-read timeout: only a deadline on the whole
    // request ends this.
    let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_after = None;
    for byte in head.iter() {
        if slow.write_all(&[*byte]).await.is_err() {
            closed_after = Some(begun.elapsed());
            break;
        }
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(50), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_after = Some(begun.elapsed());
                break;
            }
            Ok(Ok(_)) => panic!("answered an unfinished request"),
            Err(_) => {}
        }
    }
    let closed_after = closed_after.expect("the server closed the trickling connection");
    assert!(
        closed_after >= deadline && closed_after < deadline * 4,
        "closed after {closed_after:?}"
    );
    // Others are still served.
    assert_eq!(get(port).await.status, StatusCode::OK);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_slot() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(Mutex::new(0usize));
    let release = Arc::new(Notify::new());
    let handler = {
        let (inside, most, release) = (inside.clone(), most.clone(), release.clone());
        move |_: Request<Incoming>| {
            let (inside, most, release) = (inside.clone(), most.clone(), release.clone());
            async move {
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                {
                    let mut most = most.lock().unwrap();
                    *most = (*most).max(now);
                }
                release.notified().await;
                inside.fetch_sub(1, Ordering::SeqCst);
                respond(StatusCode::OK, "text/plain", "ok")
            }
        }
    };
    let limits = Limits {
        max_connections: 2,
        request_deadline: Duration::from_secs(20),
    };
    let task = tokio::spawn(serve(listener, limits, handler, |_| {}));
    let _server = Running { task };
    let clients: Vec<_> = (0..6).map(|_| tokio::spawn(get(port))).collect();
    let until = Instant::now() + Duration::from_secs(10);
    while inside.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < until, "two requests never got in");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Give the other four every chance to get in (they must not).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(*most.lock().unwrap(), 2);
    let answered = async {
        for client in clients {
            // Wake whoever is inside until this client has its answer.
            let mut client = client;
            loop {
                release.notify_waiters();
                match tokio::time::timeout(Duration::from_millis(20), &mut client).await {
                    Ok(response) => {
                        assert_eq!(response.unwrap().status, StatusCode::OK);
                        break;
                    }
                    Err(_) => continue,
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), answered)
        .await
        .expect("every client answered once slots freed");
    assert_eq!(*most.lock().unwrap(), 2);
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let _server = start(listener, GENEROUS).await;
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = tcp.write_all(huge.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text}"
    );
}
