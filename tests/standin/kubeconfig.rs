//! The check the real controller-manager and scheduler do on start: every kubeconfig they are
//! given must exist and be usable — a current context whose cluster has a server and whose
//! user has a client certificate and key (embedded `*-data` or file paths) or a token.

use base64::Engine;
use serde_yaml::Value;

/// Checks the kubeconfig at `path`; the error names the file and what is wrong.
pub fn check(path: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("stat {path}: {e}"))?;
    check_text(&text).map_err(|e| format!("invalid kubeconfig {path}: {e}"))
}

fn check_text(text: &str) -> Result<(), String> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let context_name = doc["current-context"]
        .as_str()
        .ok_or("no current-context")?;
    let context = named(&doc, "contexts", context_name, "context")?;
    let cluster_name = context["cluster"]
        .as_str()
        .ok_or_else(|| format!("context {context_name:?} has no cluster"))?;
    let user_name = context["user"]
        .as_str()
        .ok_or_else(|| format!("context {context_name:?} has no user"))?;
    let cluster = named(&doc, "clusters", cluster_name, "cluster")?;
    let server = cluster["server"].as_str().unwrap_or_default();
    if !server.starts_with("https://") && !server.starts_with("http://") {
        return Err(format!(
            "cluster {cluster_name:?} has no server URL (got {server:?})"
        ));
    }
    if let Some(ca) = cluster["certificate-authority-data"].as_str() {
        crate::tls::check_pem_cert(&decode(ca, "certificate-authority-data")?)
            .map_err(|e| format!("cluster {cluster_name:?} certificate-authority-data: {e}"))?;
    }
    let user = named(&doc, "users", user_name, "user")?;
    if user["token"].as_str().is_some_and(|t| !t.is_empty()) {
        return Ok(());
    }
    let cert = pem_field(user, "client-certificate")?
        .ok_or_else(|| format!("user {user_name:?} has no client certificate or token"))?;
    let key = pem_field(user, "client-key")?
        .ok_or_else(|| format!("user {user_name:?} has no client key"))?;
    crate::tls::check_pem_cert(&cert)
        .map_err(|e| format!("user {user_name:?} client-certificate: {e}"))?;
    crate::tls::check_pem_key(&key).map_err(|e| format!("user {user_name:?} client-key: {e}"))
}

/// The `field` entry of the `list` whose `name` matches (kubeconfig's named lists).
fn named<'a>(doc: &'a Value, list: &str, name: &str, field: &str) -> Result<&'a Value, String> {
    doc[list]
        .as_sequence()
        .and_then(|items| {
            items
                .iter()
                .find(|item| item["name"].as_str() == Some(name))
        })
        .map(|item| &item[field])
        .filter(|value| value.is_mapping())
        .ok_or_else(|| format!("{list} has no entry named {name:?}"))
}

/// `<field>-data` (base64 PEM) or `<field>` (a file path), read into PEM bytes.
fn pem_field(user: &Value, field: &str) -> Result<Option<Vec<u8>>, String> {
    if let Some(data) = user[format!("{field}-data").as_str()].as_str() {
        return decode(data, field).map(Some);
    }
    match user[field].as_str() {
        Some(path) => std::fs::read(path)
            .map(Some)
            .map_err(|e| format!("{field} {path}: {e}")),
        None => Ok(None),
    }
}

fn decode(data: &str, field: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| format!("{field}: not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(server: &str, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: c\ncontexts:\n- name: c\n  context: {{cluster: k, user: u}}\n\
             clusters:\n- name: k\n  cluster: {{server: '{server}'}}\nusers:\n- name: u\n  user: {user}\n"
        )
    }

    #[test]
    fn accepts_embedded_client_cert() {
        let cert = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let user = format!(
            "{{client-certificate-data: {}, client-key-data: {}}}",
            b64.encode(cert.cert.pem()),
            b64.encode(cert.signing_key.serialize_pem())
        );
        check_text(&kubeconfig("https://127.0.0.1:6443", &user)).unwrap();
    }

    #[test]
    fn names_what_is_missing() {
        assert!(check_text(&kubeconfig("", "{token: t}"))
            .unwrap_err()
            .contains("no server URL"));
        assert!(check_text(&kubeconfig("https://h:1", "{}"))
            .unwrap_err()
            .contains("no client certificate"));
        assert!(check_text("kind: Config\n")
            .unwrap_err()
            .contains("current-context"));
        assert!(check("/nonexistent/scheduler.conf")
            .unwrap_err()
            .contains("/nonexistent/scheduler.conf"));
    }
}
