//! Reading the configuration file: a multi-document YAML stream (`---`) of kubeadm's v1beta4
//! documents, boot's `BootConfiguration` and component configs. Every error names the file, the
//! line, the document kind and the field path.

use serde::de::DeserializeOwned;

use super::boot::{BootConfiguration, BOOT_API_VERSION};
use super::error::ConfigError;
use super::join::JoinConfiguration;
use super::kubeadm::{ClusterConfiguration, InitConfiguration, KUBEADM_API_VERSION};

/// The documents found in one configuration file, typed.
#[derive(Debug, Default)]
pub struct Documents {
    pub init: Option<InitConfiguration>,
    pub cluster: Option<ClusterConfiguration>,
    pub boot: Option<BootConfiguration>,
    /// `boot join`'s document; the other commands ignore it.
    pub join: Option<JoinConfiguration>,
    /// `KubeletConfiguration.staticPodPath`.
    pub static_pod_path: Option<String>,
    /// `KubeletConfiguration.address` and `.port`: where the agent serves the kubelet API.
    pub kubelet_address: Option<String>,
    pub kubelet_port: Option<u16>,
    /// Where each known document starts, for locating fields in later validation.
    pub sources: Vec<DocumentSource>,
    pub warnings: Vec<String>,
}

/// The text of one document and the line it starts on (1-based).
#[derive(Debug, Clone)]
pub struct DocumentSource {
    /// The file it was read from, as named in messages.
    pub file: String,
    pub kind: String,
    pub first_line: usize,
    pub text: String,
}

/// Splits a YAML stream at `---` lines, keeping each document's starting line.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = vec![(1, String::new())];
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_end();
        if trimmed == "---" || trimmed.starts_with("--- ") {
            docs.push((index + 2, String::new()));
        } else {
            let doc = &mut docs.last_mut().expect("never empty").1;
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}

/// Parses the configuration `text` read from `file` (the name used in messages).
pub fn parse(file: &str, text: &str) -> Result<Documents, ConfigError> {
    let mut documents = Documents::default();
    // Editors on Windows start files with a byte order mark; YAML allows it, serde_yaml does not.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    for (first_line, doc) in split_documents(text) {
        let at = |line: Option<usize>, path: &str, message: String| ConfigError {
            file: file.to_string(),
            line: line.map(|l| l + first_line - 1).or(Some(first_line)),
            path: path.to_string(),
            message,
            hint: None,
        };
        if let Some(line) = too_deep(&doc) {
            return Err(at(
                Some(line),
                "",
                format!("malformed YAML: brackets nested deeper than {MAX_FLOW_DEPTH} levels"),
            ));
        }
        let value: serde_yaml::Value = serde_yaml::from_str(&doc).map_err(|e| {
            let line = e.location().map(|l| l.line());
            let message = strip_location(&e);
            match value_error(&doc, &message) {
                Some((path, problem)) => at(line, &path, problem.to_string()),
                None => at(line, "", format!("malformed YAML: {message}")),
            }
        })?;
        if value.is_null() {
            continue;
        }
        let mapping = value
            .as_mapping()
            .ok_or_else(|| at(None, "", "a document must be a mapping".into()))?;
        let field = |name: &str| {
            mapping
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let (api_version, kind) = (field("apiVersion"), field("kind"));
        if api_version.is_empty() || kind.is_empty() {
            return Err(at(
                None,
                "",
                "every document needs apiVersion and kind".into(),
            ));
        }
        let source = DocumentSource {
            file: file.to_string(),
            kind: kind.clone(),
            first_line,
            text: doc.clone(),
        };
        match (api_version.as_str(), kind.as_str()) {
            (KUBEADM_API_VERSION, "InitConfiguration") => set_once(
                &mut documents.init,
                typed_document(file, first_line, &kind, &doc)?,
                &source,
                file,
            )?,
            (KUBEADM_API_VERSION, "ClusterConfiguration") => set_once(
                &mut documents.cluster,
                typed_document(file, first_line, &kind, &doc)?,
                &source,
                file,
            )?,
            (KUBEADM_API_VERSION, "JoinConfiguration") => set_once(
                &mut documents.join,
                typed_document(file, first_line, &kind, &doc)?,
                &source,
                file,
            )?,
            (BOOT_API_VERSION, "BootConfiguration") => set_once(
                &mut documents.boot,
                typed_document(file, first_line, &kind, &doc)?,
                &source,
                file,
            )?,
            ("kubelet.config.k8s.io/v1beta1", "KubeletConfiguration") => {
                let path = mapping
                    .get("staticPodPath")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                documents.static_pod_path = path;
                documents.kubelet_address = mapping
                    .get("address")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                if let Some(port) = mapping.get("port") {
                    let port = port
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0);
                    documents.kubelet_port = Some(port.ok_or_else(|| {
                        at(
                            None,
                            "KubeletConfiguration.port",
                            "must be a port number (1-65535)".into(),
                        )
                        .with_hint("the kubelet's default is 10250")
                    })?);
                }
                let others = mapping.keys().filter_map(|k| k.as_str()).filter(|k| {
                    !matches!(
                        *k,
                        "apiVersion" | "kind" | "staticPodPath" | "address" | "port"
                    )
                });
                for name in others {
                    documents.warnings.push(format!(
                        "{file}:{first_line}: KubeletConfiguration.{name} has no effect: boot's agent reads only staticPodPath, address and port"
                    ));
                }
            }
            (_, "ResetConfiguration" | "UpgradeConfiguration" | "KubeProxyConfiguration") => {
                documents.warnings.push(format!(
                    "{file}:{first_line}: {kind} has no effect on boot and is ignored"
                ));
            }
            (version, "InitConfiguration" | "ClusterConfiguration")
                if version.starts_with("kubeadm.k8s.io/") =>
            {
                return Err(at(
                    None,
                    &format!("{kind}.apiVersion"),
                    format!("{version:?} is not supported"),
                )
                .with_hint(format!(
                    "boot reads {KUBEADM_API_VERSION}; convert with `kubeadm config migrate`"
                )));
            }
            _ => {
                return Err(at(None, "", format!("unknown document kind {kind:?} of apiVersion {api_version:?}"))
                    .with_hint("boot reads kubeadm.k8s.io/v1beta4 Init/ClusterConfiguration, boot/v1alpha1 BootConfiguration and KubeletConfiguration"));
            }
        }
        documents.sources.push(source);
    }
    Ok(documents)
}

fn set_once<T>(
    slot: &mut Option<T>,
    value: T,
    source: &DocumentSource,
    file: &str,
) -> Result<(), ConfigError> {
    if slot.is_some() {
        return Err(ConfigError {
            file: file.to_string(),
            line: Some(source.first_line),
            path: source.kind.clone(),
            message: "appears twice; give each kind once".into(),
            hint: None,
        });
    }
    *slot = Some(value);
    Ok(())
}

/// Deserializes one document into its type, turning serde's error into one naming the field path
/// (`ClusterConfiguration.networking.podSubnet`) and the absolute line.
fn typed_document<T: DeserializeOwned>(
    file: &str,
    first_line: usize,
    kind: &str,
    doc: &str,
) -> Result<T, ConfigError> {
    let deserializer = serde_yaml::Deserializer::from_str(doc);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        // serde_yaml places the error of a top-level field's value at the document's start; the
        // key's own line (block style) is later. An unknown field is placed at itself, after its
        // parent's key: the later of the two is the field's line either way.
        let keys: Vec<&str> = path
            .split('.')
            .map(|key| key.split('[').next().unwrap_or(key))
            .filter(|key| !key.is_empty())
            .collect();
        let located = (!keys.is_empty())
            .then(|| super::validate::locate(doc, &keys))
            .flatten();
        let line = located
            .max(inner.location().map(|l| l.line()))
            .map(|l| l + first_line - 1);
        let field = if path == "." {
            kind.to_string()
        } else {
            format!("{kind}.{path}")
        };
        let message = strip_location(&inner);
        // serde_yaml prefixes its own (partial) view of the path; the full path is reported apart.
        let message = match message.split_once(": ") {
            Some((prefix, rest)) if !prefix.contains(' ') && path.starts_with(prefix) => {
                rest.to_string()
            }
            _ => message,
        };
        ConfigError {
            file: file.to_string(),
            line,
            path: field,
            message,
            hint: None,
        }
    })
}

/// Deeper `[`/`{` nesting than any configuration needs. serde_yaml refuses more than 128 levels
/// only after its scanner has tokenised the whole document, which takes quadratic time in the
/// nesting depth (100 000 `[` took over a minute), so deeper documents are refused up front.
pub const MAX_FLOW_DEPTH: usize = 64;

/// The line (1-based, within `doc`) where `[`/`{` nesting first exceeds [`MAX_FLOW_DEPTH`].
/// Brackets in quoted scalars and comments do not count; those in plain scalars do, which can
/// only refuse a document with more than 64 unbalanced opening brackets in its values.
pub fn too_deep(doc: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (index, line) in doc.lines().enumerate() {
        let mut quote = None;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some('"'), '\\') => {
                    chars.next(); // an escaped character, `\"` among them
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '#') => break,
                (None, '[' | '{') => {
                    depth += 1;
                    if depth > MAX_FLOW_DEPTH {
                        return Some(index + 1);
                    }
                }
                (None, ']' | '}') => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

/// A value that is well-formed YAML but no YAML value can hold (an integer beyond 128 bits)
/// fails before the document's kind is known; serde_yaml prefixes the field's path. Returns
/// `Kind.path` (the kind read from the text) and the problem.
fn value_error<'a>(doc: &str, message: &'a str) -> Option<(String, &'a str)> {
    let (path, problem) = message.split_once(": ")?;
    let is_path = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '[' | ']' | '_' | '-'));
    if !is_path || !problem.starts_with("invalid ") {
        return None;
    }
    let kind = doc
        .lines()
        .find_map(|l| l.strip_prefix("kind:"))
        .map(str::trim)
        .filter(|k| !k.is_empty());
    Some((
        kind.map_or(path.to_string(), |k| format!("{k}.{path}")),
        problem,
    ))
}

/// serde_yaml appends " at line L column C"; the line is reported separately.
fn strip_location(err: &serde_yaml::Error) -> String {
    let text = err.to_string();
    match text.rfind(" at line ") {
        Some(pos) => text[..pos].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        parse("config.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn reads_all_document_kinds() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nclusterName: c1\n---\napiVersion: boot/v1alpha1\nkind: BootConfiguration\n---\napiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nstaticPodPath: /x\ncgroupDriver: systemd\n";
        let docs = parse("c", text).unwrap();
        assert!(docs.init.is_some() && docs.boot.is_some());
        assert_eq!(docs.cluster.unwrap().cluster_name, "c1");
        assert_eq!(docs.static_pod_path.as_deref(), Some("/x"));
        assert!(
            docs.warnings[0].contains("cgroupDriver"),
            "{:?}",
            docs.warnings
        );
    }

    #[test]
    fn invalid_cidr_names_document_field_and_line() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\n---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: 10.244.0.0/33\n";
        assert_eq!(
            error_of(text),
            "config.yaml:7: ClusterConfiguration.networking.podSubnet: \"10.244.0.0/33\" is not a valid CIDR"
        );
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_errors() {
        let unknown = error_of("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnets: x\n");
        assert!(
            unknown.starts_with("config.yaml:4: ClusterConfiguration.networking"),
            "{unknown}"
        );
        assert!(unknown.contains("unknown field `podSubnets`"), "{unknown}");
        let wrong = error_of("apiVersion: kubeadm.k8s.io/v1beta4\nkind: InitConfiguration\nlocalAPIEndpoint:\n  bindPort: high\n");
        assert!(
            wrong.starts_with(
                "config.yaml:4: InitConfiguration.localAPIEndpoint.bindPort: invalid type"
            ),
            "{wrong}"
        );
    }

    #[test]
    fn malformed_yaml_and_unknown_kinds_are_errors() {
        assert!(
            error_of("a: [b\n").starts_with("config.yaml:"),
            "{}",
            error_of("a: [b\n")
        );
        assert!(error_of("apiVersion: v1\nkind: Pod\n").contains("unknown document kind \"Pod\""));
        assert!(
            error_of("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n")
                .contains("v1beta3")
        );
        let twice = "apiVersion: boot/v1alpha1\nkind: BootConfiguration\n---\napiVersion: boot/v1alpha1\nkind: BootConfiguration\n";
        assert_eq!(
            error_of(twice),
            "config.yaml:4: BootConfiguration: appears twice; give each kind once"
        );
    }
}
