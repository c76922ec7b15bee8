//! The kubelet's read API on `:10250` (reference §18): HTTPS (hyper over rustls), every request
//! authenticated ([`auth`](super::auth): client certificate or bearer token, never anonymous) and
//! authorized (SubjectAccessReview) before it is routed; `GET /healthz`, `GET /pods` (the static
//! pods under their kubelet names and UIDs) and `GET /containerLogs/{ns}/{pod}/{container}`.
//! Answers come from what the supervisor publishes and from the log files; the server never asks
//! the supervisor anything.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OnceCell};

use super::auth::{self, Auth, Denied, User};
use super::logs::{self, Limit, LineReader, LogOptions, QueryError};
use super::objects;
use super::NodeOptions;
use crate::agent::published::Published;

type Body = BoxBody<Bytes, Infallible>;

/// What every connection shares.
struct Shared {
    options: Arc<NodeOptions>,
    states: watch::Receiver<Arc<Published>>,
    auth: Auth,
    client: OnceCell<Client>,
}

/// Accepts connections until the task is aborted.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    options: Arc<NodeOptions>,
    states: watch::Receiver<Arc<Published>>,
) {
    let shared = Arc::new(Shared {
        auth: Auth::new(&options.identity.name),
        options,
        states,
        client: OnceCell::new(),
    });
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let Ok(Ok(stream)) =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp))
                    .await
            else {
                return;
            };
            let peer = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .and_then(|cert| auth::user_from_certificate(cert));
            let service = hyper::service::service_fn(move |request| {
                let shared = shared.clone();
                let peer = peer.clone();
                async move { Ok::<_, Infallible>(handle(&shared, peer, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl Shared {
    async fn client(&self) -> Result<Client, Denied> {
        self.client
            .get_or_try_init(|| async {
                crate::kubeapi::Caller::from_file(
                    &self.options.kubeconfig,
                    std::time::Duration::from_secs(10),
                )
                .await
                .map(|c| c.client)
                .map_err(|e| Denied::ReviewFailed(e.to_string()))
            })
            .await
            .cloned()
    }

    /// The certificate's user, or the bearer token's; otherwise 401.
    async fn authenticate(
        &self,
        peer: Option<User>,
        request: &Request<Incoming>,
    ) -> Result<User, Denied> {
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty());
        match (token, peer) {
            (Some(token), _) => self.auth.token_user(&self.client().await?, token).await,
            (None, Some(user)) => Ok(user),
            (None, None) => Err(Denied::Unauthenticated),
        }
    }
}

async fn handle(shared: &Shared, peer: Option<User>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_string();
    let user = match shared.authenticate(peer, &request).await {
        Ok(user) => user,
        Err(denied) => return refused(denied),
    };
    let verb = auth::verb(request.method());
    if shared.options.authorize {
        let client = match shared.client().await {
            Ok(client) => client,
            Err(denied) => return refused(denied),
        };
        if let Err(denied) = shared
            .auth
            .authorize(&client, &user, verb, auth::subresources(&path))
            .await
        {
            return refused(denied);
        }
    }
    if request.method() != http::Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is served");
    }
    let query = request.uri().query().unwrap_or_default().to_string();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => text(StatusCode::OK, "ok"),
        ["pods"] | ["pods", ""] => pods(shared),
        ["containerLogs", namespace, pod, container]
        | ["containerLogs", namespace, pod, _, container] => {
            container_logs(shared, namespace, pod, container, &query)
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

fn refused(denied: Denied) -> Response<Body> {
    match denied {
        Denied::Unauthenticated => text(StatusCode::UNAUTHORIZED, "Unauthorized"),
        Denied::Forbidden(message) => text(StatusCode::FORBIDDEN, message),
        // Without the API server nobody can be checked: refuse, and say why.
        Denied::ReviewFailed(why) => text(StatusCode::UNAUTHORIZED, format!("Unauthorized: {why}")),
    }
}

/// `/pods`: a v1 PodList of the static pods under their kubelet-side names and UIDs.
fn pods(shared: &Shared) -> Response<Body> {
    let published = shared.states.borrow().clone();
    let now = objects::trim_nanos(&crate::runtime::logs::cri::rfc3339_nano(SystemTime::now()));
    let items: Vec<serde_json::Value> = published
        .status
        .pods
        .iter()
        .filter_map(|status| {
            let pod = published.pod(&status.uid)?;
            let mut object = serde_json::to_value(objects::mirror_pod(
                pod,
                &shared.options.identity.name,
                "",
                &now,
            ))
            .ok()?;
            object["metadata"]["uid"] = serde_json::json!(pod.uid);
            object["metadata"]["annotations"]
                .as_object_mut()?
                .remove(objects::CONFIG_MIRROR);
            object["metadata"]
                .as_object_mut()?
                .remove("ownerReferences");
            object["status"] =
                objects::mirror_status(pod, status, &shared.options.identity.address, None, &now);
            Some(object)
        })
        .collect();
    let list =
        serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items});
    let mut response = text(
        StatusCode::OK,
        serde_json::to_vec(&list).unwrap_or_default(),
    );
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn container_logs(
    shared: &Shared,
    namespace: &str,
    pod: &str,
    container: &str,
    query: &str,
) -> Response<Body> {
    let options = match LogOptions::parse(query, SystemTime::now()) {
        Ok(options) => options,
        Err(QueryError::Bad(why)) => return text(StatusCode::BAD_REQUEST, why),
        Err(QueryError::Invalid(why)) => return text(StatusCode::UNPROCESSABLE_ENTITY, why),
    };
    let published = shared.states.borrow().clone();
    let Some(status) = published
        .status
        .pods
        .iter()
        .find(|p| p.namespace == namespace && p.name == pod)
    else {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{pod} is not on this node"),
        );
    };
    let Some(found) = status
        .containers
        .iter()
        .chain(&status.init_containers)
        .find(|c| c.name == container)
    else {
        return text(
            StatusCode::NOT_FOUND,
            format!("container {container:?} is not in pod {namespace}/{pod}"),
        );
    };
    // The path comes from the agent's own state, not from the request.
    let Some(container_dir) = found.log_path.parent().map(|p| p.to_path_buf()) else {
        return text(StatusCode::NOT_FOUND, "no log directory");
    };
    let Some(log) = logs::log_file(&container_dir, options.previous) else {
        let what = if options.previous {
            "previous terminated container"
        } else {
            "log"
        };
        return text(
            StatusCode::BAD_REQUEST,
            format!("{what} {container:?} in pod {pod:?} not found"),
        );
    };
    let (lines, offset) = match logs::read_all(&log, &options) {
        Ok(read) => read,
        Err(e) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read {}: {e}", log.display()),
            )
        }
    };
    let mut limit = Limit(options.limit_bytes);
    let mut first = Vec::new();
    for line in &lines {
        first.extend_from_slice(limit.take(line));
    }
    if !options.follow || limit.exhausted() {
        return text(StatusCode::OK, first);
    }
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(follow(
        container_dir,
        log,
        offset,
        options,
        limit,
        Bytes::from(first),
        tx,
    ));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Sends new lines until the client goes away or `limitBytes` is used up, moving on to the next
/// run's file when the container restarts.
async fn follow(
    container_dir: std::path::PathBuf,
    mut log: std::path::PathBuf,
    mut offset: u64,
    options: LogOptions,
    mut limit: Limit,
    first: Bytes,
    tx: mpsc::Sender<Bytes>,
) {
    if !first.is_empty() && tx.send(first).await.is_err() {
        return;
    }
    let mut reader = LineReader::default();
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            _ = tokio::time::sleep(logs::FOLLOW_POLL) => {}
        }
        if let Ok((lines, next)) = logs::read_more(&log, offset, &mut reader, &options) {
            offset = next;
            let mut chunk = Vec::new();
            for line in &lines {
                chunk.extend_from_slice(limit.take(line));
            }
            if !chunk.is_empty() && tx.send(Bytes::from(chunk)).await.is_err() {
                return;
            }
            if limit.exhausted() {
                return;
            }
        }
        if let Some(newer) = logs::log_file(&container_dir, false).filter(|l| *l != log) {
            log = newer;
            offset = 0;
            reader = LineReader::default();
        }
    }
}
