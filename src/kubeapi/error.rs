//! API failures as users see them: the object, the identity that made the call and what the API
//! server or the connection said; [`ApiError::hint`] says what to try (the CLI prints it as
//! `hint:`). Kubernetes client errors are flattened to text here because their own `Display`
//! embeds `Debug` output.

use std::error::Error as StdError;
use std::path::PathBuf;
use std::time::Duration;

/// A call to the API server that did not work out.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("cannot use kubeconfig {}: {detail}", path.display())]
    Kubeconfig {
        path: PathBuf,
        detail: String,
        hint: String,
    },
    #[error("cannot {action} {object} with {identity}: {detail}")]
    Api {
        /// `create`, `update`, `get`.
        action: &'static str,
        /// e.g. `ClusterRoleBinding kubeadm:cluster-admins`.
        object: String,
        /// The kubeconfig (or credentials) whose identity made the call.
        identity: String,
        /// The HTTP status, `None` for connection and TLS failures.
        code: Option<u16>,
        detail: String,
        hint: String,
    },
    #[error(
        "cannot {action} {object} with {identity}: no answer within {}s{}",
        after.as_secs_f64(),
        last.as_ref().map(|l| format!(" (earlier attempt: {l})")).unwrap_or_default()
    )]
    Timeout {
        action: &'static str,
        object: String,
        identity: String,
        after: Duration,
        /// The last transient failure before time ran out, if any.
        last: Option<String>,
    },
}

impl ApiError {
    /// What the user can do about it.
    pub fn hint(&self) -> String {
        match self {
            ApiError::Kubeconfig { hint, .. } | ApiError::Api { hint, .. } => hint.clone(),
            ApiError::Timeout { .. } => {
                "the API server accepts connections but does not answer; check its log, or raise \
                 timeouts.kubernetesAPICall"
                    .into()
            }
        }
    }

    /// The HTTP status the API server answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Api { code, .. } => *code,
            _ => None,
        }
    }
}

/// The HTTP status of an API error, `None` for connection and TLS failures.
pub fn status_code(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// A client error as one line: an API `Status` as `CODE Reason: message`, anything else as its
/// message followed by its causes, without any `Debug` text.
pub fn describe(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        return format!("{} {}: {}", status.code, status.reason, status.message);
    }
    let mut text = match error {
        // These variants' messages repeat their source's; start from the source instead.
        kube::Error::HyperError(_) | kube::Error::Service(_) => String::new(),
        other => other.to_string(),
    };
    let mut cause: Option<&(dyn StdError + 'static)> = error.source();
    while let Some(c) = cause {
        let line = c.to_string();
        if !text.contains(&line) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&line);
        }
        cause = c.source();
    }
    if text.is_empty() {
        text = error.to_string();
    }
    text
}

/// What to try next, from the HTTP status or the connection error's text.
pub fn hint_for(status: Option<u16>, detail: &str, server: &str) -> String {
    let lower = detail.to_lowercase();
    match status {
        Some(401) => format!(
            "the API server at {server} rejected the client certificate: was it signed by the CA \
             its --client-ca-file names? Re-run `boot init phase kubeconfig` after `boot init phase certs`"
        ),
        Some(403) => "this identity lacks the permission; post-boot uses super-admin.conf \
                      (group system:masters) when admin.conf is Forbidden"
            .to_string(),
        Some(404) => format!(
            "the API server at {server} does not serve this resource: is it a kube-apiserver, and \
             is the rbac.authorization.k8s.io/v1 API enabled?"
        ),
        Some(code) if code >= 500 => format!(
            "the API server at {server} failed ({code}); check its log and its etcd"
        ),
        Some(_) => "the API server refused the object; see the message above".to_string(),
        None if lower.contains("connection refused") => format!(
            "nothing listens at {server}: is kube-apiserver running (`boot status`)?"
        ),
        None if lower.contains("certificate") || lower.contains("tls") => format!(
            "TLS with {server} failed: the server certificate must be signed by the kubeconfig's \
             certificate-authority-data and name this address (apiserver.crt SANs)"
        ),
        None => format!("check that kube-apiserver at {server} is running and reachable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Status::failure(message, reason).with_code(code).boxed())
    }

    #[test]
    fn api_errors_read_as_code_reason_message_without_debug() {
        let text = describe(&api(
            409,
            "AlreadyExists",
            "configmaps \"x\" already exists",
        ));
        assert_eq!(text, "409 AlreadyExists: configmaps \"x\" already exists");
        assert!(!text.contains("ErrorResponse"));
    }

    #[test]
    fn hints_follow_the_failure() {
        let server = "https://127.0.0.1:6443";
        assert!(hint_for(Some(401), "", server).contains("--client-ca-file"));
        assert!(hint_for(Some(403), "", server).contains("super-admin.conf"));
        assert!(hint_for(Some(503), "", server).contains("etcd"));
        assert!(hint_for(
            None,
            "tcp connect error: Connection refused (os error 111)",
            server
        )
        .contains("nothing listens at https://127.0.0.1:6443"));
        assert!(hint_for(None, "invalid peer certificate: UnknownIssuer", server).contains("SANs"));
        assert!(hint_for(None, "something else", server).contains("reachable"));
    }

    #[test]
    fn errors_name_the_object_and_the_identity() {
        let err = ApiError::Api {
            action: "create",
            object: "ClusterRoleBinding kubeadm:cluster-admins".into(),
            identity: "/etc/kubernetes/admin.conf".into(),
            code: Some(500),
            detail: "500 InternalError: boom".into(),
            hint: "look".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot create ClusterRoleBinding kubeadm:cluster-admins with \
             /etc/kubernetes/admin.conf: 500 InternalError: boom"
        );
        assert_eq!(err.hint(), "look");
        assert_eq!(err.code(), Some(500));
        let err = ApiError::Timeout {
            action: "update",
            object: "ConfigMap kube-system/kubeadm-config".into(),
            identity: "/k/admin.conf".into(),
            after: Duration::from_millis(1500),
            last: None,
        };
        assert!(err
            .to_string()
            .ends_with("cannot update ConfigMap kube-system/kubeadm-config with /k/admin.conf: no answer within 1.5s"));
    }
}
