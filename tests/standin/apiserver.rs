//! The kube-apiserver stand-in: TLS on `--bind-address:--secure-port` with the manifest's
//! serving cert, client certs verified against `--client-ca-file`, health endpoints whose
//! readiness depends on a real etcd put, `/version`, minimal discovery, and the two resources
//! `boot init`'s post-boot phase writes (see `store`). `/livez` does not depend on etcd, so an
//! etcd outage makes the stand-in unready but not restarted. Every request other than health
//! and `/version` (discovery included, unauthenticated ones with user `null`) is recorded as a
//! JSON line in the file named by `BOOT_STANDIN_RECORD`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio_rustls::TlsAcceptor;

use crate::etcd::EtcdClient;
use crate::faults::FaultSource;
use crate::flags::Flags;
use crate::health::{self, Check, Endpoint};
use crate::http::{Request, Response};
use crate::store::{status, Resource, Store};

/// Environment variable naming the file API requests are appended to.
pub const RECORD_ENV: &str = "BOOT_STANDIN_RECORD";
/// kube-apiserver's default `--secure-port`.
const DEFAULT_SECURE_PORT: &str = "6443";
/// The key written at start and on every readiness check.
pub const ETCD_KEY: &str = "/registry/boot-standin/kube-apiserver";

struct ApiServer {
    etcd: EtcdClient,
    store: Mutex<Store>,
    record: Option<Mutex<std::fs::File>>,
    faults: Arc<FaultSource>,
    /// What `/api` advertises as the server address.
    address: String,
    etcd_value: String,
}

pub async fn run(flags: Flags, faults: Arc<FaultSource>) -> Result<(), String> {
    let bind = flags.path("bind-address").unwrap_or("0.0.0.0").to_string();
    let port = flags
        .path("secure-port")
        .unwrap_or(DEFAULT_SECURE_PORT)
        .to_string();
    let tls = crate::tls::from_flags(&flags, &bind)?;
    let etcd = EtcdClient::from_flags(&flags)?;
    let record = match std::env::var_os(RECORD_ENV) {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| format!("{RECORD_ENV}={}: {e}", path.to_string_lossy()))?,
        )),
        None => None,
    };
    let advertise = flags.path("advertise-address").unwrap_or(&bind).to_string();
    let server = Arc::new(ApiServer {
        etcd,
        store: Mutex::new(Store::default()),
        record,
        faults: faults.clone(),
        address: crate::host_port(&advertise, &port),
        etcd_value:
            json!({"pid": std::process::id(), "advertiseAddress": advertise, "securePort": port})
                .to_string(),
    });
    match server.check_etcd().await {
        Ok(()) => crate::log(&format!(
            "etcd ok: wrote {ETCD_KEY} to {}",
            server.etcd.endpoint()
        )),
        Err(e) => crate::log(&format!(
            "etcd not reachable yet, /readyz fails until it is: {e}"
        )),
    }
    let listener = crate::bind(&bind, &port).await?;
    crate::log(&format!(
        "Serving securely on {}",
        crate::host_port(&bind, &port)
    ));
    let handler: crate::http::Handler = Arc::new(move |request| {
        let server = server.clone();
        Box::pin(async move { server.handle(request).await })
    });
    crate::http::serve(listener, Some(TlsAcceptor::from(tls)), handler, faults).await
}

impl ApiServer {
    async fn check_etcd(&self) -> Result<(), String> {
        self.etcd.put(ETCD_KEY, &self.etcd_value).await
    }

    async fn handle(&self, request: Request) -> Response {
        let path = request.path().to_string();
        if let Some(endpoint) = Endpoint::from_path(&path) {
            return self.health(&request, endpoint).await;
        }
        if path == "/version" {
            return Response::json(200, &version_info());
        }
        self.record(&request);
        if request.identity.is_none() {
            let body = status(401, "Unauthorized", "Unauthorized".into(), json!({}));
            return Response::json(401, &body);
        }
        let (code, body) = match (request.method.as_str(), path.as_str()) {
            ("GET", "/api") => (
                200,
                json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}]}),
            ),
            ("GET", "/apis") => (
                200,
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [rbac_group()]}),
            ),
            ("GET", "/api/v1") => (200, resource_list("v1", "configmaps", "ConfigMap", &["cm"])),
            ("GET", "/apis/rbac.authorization.k8s.io") => {
                let mut group = rbac_group();
                group["kind"] = json!("APIGroup");
                group["apiVersion"] = json!("v1");
                (200, group)
            }
            ("GET", "/apis/rbac.authorization.k8s.io/v1") => (
                200,
                resource_list(
                    "rbac.authorization.k8s.io/v1",
                    "clusterrolebindings",
                    "ClusterRoleBinding",
                    &[],
                ),
            ),
            // What kube-apiserver answers every authenticated user: may I? Only the `rbac`
            // fault's grants are known, so anything else is allowed.
            ("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews") => {
                let store = self
                    .store
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                let allowed = self
                    .forbidden(
                        &request,
                        &store,
                        &Resource::ConfigMaps {
                            namespace: String::new(),
                        },
                    )
                    .is_none();
                let mut review: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                review["status"] = json!({"allowed": allowed});
                (201, review)
            }
            _ => match Resource::route(&path) {
                Some((resource, name)) => {
                    let mut store = self
                        .store
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    match self.forbidden(&request, &store, &resource) {
                        Some(denied) => denied,
                        None => {
                            store.handle(&request.method, &resource, name.as_deref(), &request.body)
                        }
                    }
                }
                None => (
                    404,
                    status(
                        404,
                        "NotFound",
                        "the server could not find the requested resource".into(),
                        json!({}),
                    ),
                ),
            },
        };
        Response::json(code, &body)
    }

    /// The `rbac` fault's authorizer: 403 like kube-apiserver's RBAC for a user that is
    /// neither in `system:masters` nor bound to `cluster-admin`.
    fn forbidden(
        &self,
        request: &Request,
        store: &Store,
        resource: &Resource,
    ) -> Option<(u16, Value)> {
        let identity = request.identity.as_ref()?;
        if !self.faults.current().rbac
            || identity.groups.iter().any(|g| g == "system:masters")
            || store.is_cluster_admin(&identity.user, &identity.groups)
        {
            return None;
        }
        Some((403, resource.forbidden(&identity.user, &request.method)))
    }

    async fn health(&self, request: &Request, endpoint: Endpoint) -> Response {
        let mut checks = vec![Check::ok("ping"), Check::ok("log")];
        if endpoint != Endpoint::Livez {
            checks.push(Check {
                name: "etcd",
                result: self.check_etcd().await,
            });
        }
        if endpoint == Endpoint::Readyz {
            checks.push(Check::ok("informer-sync"));
            checks.push(Check::ok("shutdown"));
        }
        health::respond(request, endpoint, checks, &self.faults.current())
    }

    /// Appends `{method, path, user, groups, body}` to the record file (user `null` without a
    /// client cert); the body is kept as JSON when it parses.
    fn record(&self, request: &Request) {
        let Some(file) = &self.record else { return };
        let body = serde_json::from_slice::<Value>(&request.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&request.body).into_owned()));
        let (user, groups) = match &request.identity {
            Some(identity) => (json!(identity.user), json!(identity.groups)),
            None => (Value::Null, json!([])),
        };
        let line = json!({"method": request.method, "path": request.target, "user": user,
            "groups": groups, "body": body});
        let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(e) = writeln!(file, "{line}") {
            crate::log(&format!("{RECORD_ENV}: {e}"));
        }
    }
}

fn version_info() -> Value {
    let version = crate::version();
    let mut numbers = version.trim_start_matches('v').split('.');
    let (major, minor) = (numbers.next().unwrap_or("1"), numbers.next().unwrap_or("0"));
    json!({"major": major, "minor": minor, "gitVersion": version, "gitCommit": "boot-standin",
        "gitTreeState": "clean", "buildDate": "1970-01-01T00:00:00Z", "goVersion": "go1.24.0",
        "compiler": "gc", "platform": format!("linux/{}", go_arch())})
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn rbac_group() -> Value {
    let version = json!({"groupVersion": "rbac.authorization.k8s.io/v1", "version": "v1"});
    json!({"name": "rbac.authorization.k8s.io", "versions": [version], "preferredVersion": version})
}

/// Discovery for one resource; only the core group's ConfigMaps are namespaced here.
fn resource_list(group_version: &str, plural: &str, kind: &str, short_names: &[&str]) -> Value {
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": [{
        "name": plural, "singularName": kind.to_lowercase(), "namespaced": group_version == "v1",
        "kind": kind, "shortNames": short_names, "verbs": ["create", "delete", "get", "list", "update"]}]})
}
