//! Who may use the kubelet API, as the kubelet decides it with kubeadm's settings (reference §18):
//! anonymous off; a client certificate verified against `clientCAFile` (user = CN, groups = O); a
//! bearer token sent to a TokenReview (cached 2 min); then a SubjectAccessReview on `nodes/<sub>`
//! with the verb from the method (cached 5 min when allowed, 30 s when denied). The reviews go
//! through the node's own client (`kubelet.conf`; the `system:node` role may create both).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use kube::Client;

const TOKEN_TTL: Duration = Duration::from_secs(120);
const ALLOWED_TTL: Duration = Duration::from_secs(300);
const DENIED_TTL: Duration = Duration::from_secs(30);
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
    pub uid: String,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The user of a verified client certificate: CN and O.
pub fn user_from_certificate(der: &[u8]) -> Option<User> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_string))
        .collect();
    Some(User {
        name,
        groups,
        uid: String::new(),
        extra: BTreeMap::new(),
    })
}

/// `GET`→`get`, `POST`→`create`, `PUT`→`update`, `PATCH`→`patch`, `DELETE`→`delete`.
pub fn verb(method: &http::Method) -> &'static str {
    match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    }
}

/// The subresources tried for a path, any allowed one admits (KubeletFineGrainedAuthz, GA in
/// 1.36: `/pods` as `pods` and `/healthz` as `healthz` before `proxy`).
pub fn subresources(path: &str) -> &'static [&'static str] {
    let first = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    match first {
        "stats" => &["stats"],
        "metrics" => &["metrics"],
        "logs" => &["log"],
        "pods" | "runningpods" => &["pods", "proxy"],
        "healthz" => &["healthz", "proxy"],
        "configz" => &["configz", "proxy"],
        _ => &["proxy"],
    }
}

/// A SubjectAccessReview's question: who, which verb, which subresource of `nodes/<node>`.
type Question = (User, &'static str, &'static str);

/// The two caches and the client the reviews go through.
pub struct Auth {
    node: String,
    tokens: Mutex<HashMap<String, (Option<User>, Instant)>>,
    decisions: Mutex<HashMap<Question, (bool, Instant)>>,
}

#[derive(Debug)]
pub enum Denied {
    /// 401.
    Unauthenticated,
    /// 403, with the kubelet's message.
    Forbidden(String),
    /// The review could not be made (the API server is down): 401 or 403 as the kubelet does,
    /// never "allowed".
    ReviewFailed(String),
}

impl Auth {
    pub fn new(node: &str) -> Auth {
        Auth {
            node: node.to_string(),
            tokens: Mutex::new(HashMap::new()),
            decisions: Mutex::new(HashMap::new()),
        }
    }

    /// The user behind a bearer token, through a (cached) TokenReview.
    pub async fn token_user(&self, client: &Client, token: &str) -> Result<User, Denied> {
        if let Some((user, at)) = self.tokens.lock().expect("token cache").get(token) {
            if at.elapsed() < TOKEN_TTL {
                return user.clone().ok_or(Denied::Unauthenticated);
            }
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(client.clone());
        let answer =
            tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
                .await
                .map_err(|_| Denied::ReviewFailed("TokenReview: no answer".into()))?
                .map_err(|e| {
                    Denied::ReviewFailed(format!("TokenReview: {}", crate::kubeapi::describe(&e)))
                })?;
        let status = answer.status.unwrap_or_default();
        let user = status
            .authenticated
            .unwrap_or(false)
            .then(|| status.user.unwrap_or_default())
            .map(|u| User {
                name: u.username.unwrap_or_default(),
                groups: u.groups.unwrap_or_default(),
                uid: u.uid.unwrap_or_default(),
                extra: u.extra.unwrap_or_default(),
            });
        self.tokens
            .lock()
            .expect("token cache")
            .insert(token.to_string(), (user.clone(), Instant::now()));
        user.ok_or(Denied::Unauthenticated)
    }

    /// Allowed if a SubjectAccessReview allows any of the path's subresources.
    pub async fn authorize(
        &self,
        client: &Client,
        user: &User,
        verb: &'static str,
        subresources: &'static [&'static str],
    ) -> Result<(), Denied> {
        for subresource in subresources {
            if self.allowed(client, user, verb, subresource).await? {
                return Ok(());
            }
        }
        Err(Denied::Forbidden(format!(
            "Forbidden (user={}, verb={verb}, resource=nodes, subresource(s)=[{}])",
            user.name,
            subresources.join(" ")
        )))
    }

    async fn allowed(
        &self,
        client: &Client,
        user: &User,
        verb: &'static str,
        subresource: &'static str,
    ) -> Result<bool, Denied> {
        let key = (user.clone(), verb, subresource);
        if let Some((allowed, at)) = self.decisions.lock().expect("decision cache").get(&key) {
            let ttl = if *allowed { ALLOWED_TTL } else { DENIED_TTL };
            if at.elapsed() < ttl {
                return Ok(*allowed);
            }
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.name.clone()),
                groups: Some(user.groups.clone()),
                uid: Some(user.uid.clone()).filter(|u| !u.is_empty()),
                extra: Some(user.extra.clone()).filter(|e| !e.is_empty()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    group: Some(String::new()),
                    version: Some("v1".into()),
                    resource: Some("nodes".into()),
                    subresource: Some(subresource.into()),
                    name: Some(self.node.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(client.clone());
        let answer =
            tokio::time::timeout(REVIEW_TIMEOUT, api.create(&PostParams::default(), &review))
                .await
                .map_err(|_| Denied::ReviewFailed("SubjectAccessReview: no answer".into()))?
                .map_err(|e| {
                    Denied::ReviewFailed(format!(
                        "SubjectAccessReview: {}",
                        crate::kubeapi::describe(&e)
                    ))
                })?;
        let allowed = answer.status.is_some_and(|s| s.allowed);
        self.decisions
            .lock()
            .expect("decision cache")
            .insert(key, (allowed, Instant::now()));
        Ok(allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_methods_map_as_the_kubelet_maps_them() {
        assert_eq!(subresources("/containerLogs/kube-system/p/c"), ["proxy"]);
        assert_eq!(subresources("/pods"), ["pods", "proxy"]);
        assert_eq!(subresources("/healthz"), ["healthz", "proxy"]);
        assert_eq!(subresources("/logs/syslog"), ["log"]);
        assert_eq!(subresources("/stats/summary"), ["stats"]);
        assert_eq!(verb(&http::Method::GET), "get");
        assert_eq!(verb(&http::Method::POST), "create");
        assert_eq!(verb(&http::Method::DELETE), "delete");
    }
}
