//! The tera templates: built into the binary from `templates/`, each overridable by a file of the
//! same name in `--templates DIR`. The `yaml` filter writes a string as a YAML scalar, quoted only
//! where YAML needs it, so no value can break a manifest's structure.

use std::collections::HashMap;
use std::path::Path;

use tera::{Tera, Value};

use super::RenderError;

/// Every template, as shipped.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "static-pod.yaml.tera",
        include_str!("../../templates/static-pod.yaml.tera"),
    ),
    (
        "etcd.yaml.tera",
        include_str!("../../templates/etcd.yaml.tera"),
    ),
    (
        "kube-apiserver.yaml.tera",
        include_str!("../../templates/kube-apiserver.yaml.tera"),
    ),
    (
        "kube-controller-manager.yaml.tera",
        include_str!("../../templates/kube-controller-manager.yaml.tera"),
    ),
    (
        "kube-scheduler.yaml.tera",
        include_str!("../../templates/kube-scheduler.yaml.tera"),
    ),
    (
        "kubeconfig.yaml.tera",
        include_str!("../../templates/kubeconfig.yaml.tera"),
    ),
    (
        "encryption-config.yaml.tera",
        include_str!("../../templates/encryption-config.yaml.tera"),
    ),
    (
        "audit-policy.yaml.tera",
        include_str!("../../templates/audit-policy.yaml.tera"),
    ),
    (
        "coredns.yaml.tera",
        include_str!("../../templates/addons/coredns.yaml.tera"),
    ),
    (
        "kube-proxy.yaml.tera",
        include_str!("../../templates/addons/kube-proxy.yaml.tera"),
    ),
];

pub struct Templates {
    tera: Tera,
}

impl Templates {
    /// The built-in templates only.
    pub fn built_in() -> Result<Self, RenderError> {
        Self::with_overrides(None)
    }

    /// The built-in templates, with any file of the same name in `dir` taking precedence. Files in
    /// `dir` that match no template are an error, so a typo does not silently change nothing.
    pub fn with_overrides(dir: Option<&Path>) -> Result<Self, RenderError> {
        let mut sources: HashMap<&str, String> =
            BUILT_IN.iter().map(|(n, t)| (*n, t.to_string())).collect();
        if let Some(dir) = dir {
            let entries = std::fs::read_dir(dir).map_err(|source| RenderError::TemplateDir {
                dir: dir.into(),
                source,
            })?;
            for entry in entries {
                let path = entry
                    .map_err(|source| RenderError::TemplateDir {
                        dir: dir.into(),
                        source,
                    })?
                    .path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let Some((known, _)) = BUILT_IN.iter().find(|(n, _)| *n == name) else {
                    return Err(RenderError::UnknownTemplate {
                        path,
                        known: BUILT_IN.iter().map(|(n, _)| *n).collect(),
                    });
                };
                let text =
                    std::fs::read_to_string(&path).map_err(|source| RenderError::TemplateRead {
                        path: path.clone(),
                        source,
                    })?;
                sources.insert(known, text);
            }
        }
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        tera.register_filter("yaml", yaml_filter);
        // Parents first, so `extends` resolves.
        let mut ordered: Vec<(&str, String)> = sources.into_iter().collect();
        ordered.sort_by_key(|(name, _)| *name != "static-pod.yaml.tera");
        tera.add_raw_templates(ordered)
            .map_err(|e| RenderError::Template {
                name: template_name(&e),
                message: chain(&e),
            })?;
        Ok(Templates { tera })
    }

    pub fn render(&self, name: &str, context: &tera::Context) -> Result<String, RenderError> {
        self.tera
            .render(name, context)
            .map_err(|e| RenderError::Template {
                name: name.to_string(),
                message: chain(&e),
            })
    }
}

/// The names of the templates a user can override.
pub fn names() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|(n, _)| *n)
}

fn yaml_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let scalar = match value {
        Value::String(s) => yaml_scalar(s),
        other => other.to_string(),
    };
    Ok(Value::String(scalar))
}

/// A string as a one-line YAML scalar: plain when that reads back as the same string, otherwise
/// double-quoted (JSON string syntax is valid YAML).
pub fn yaml_scalar(s: &str) -> String {
    let plain_safe = !s.is_empty()
        && !s.starts_with(|c: char| " -?:,[]{}#&*!|>'\"%@`".contains(c))
        && !s.ends_with(' ')
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains('\n')
        && matches!(serde_yaml::from_str::<serde_yaml::Value>(s), Ok(serde_yaml::Value::String(ref back)) if back == s);
    // `--flag=value` starts with '-' but is a plain scalar in YAML ("- --flag" is how kubeadm writes it).
    let dashed_flag = s.starts_with("--")
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.contains('\n')
        && matches!(serde_yaml::from_str::<serde_yaml::Value>(s), Ok(serde_yaml::Value::String(ref back)) if back == s);
    if plain_safe || dashed_flag {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialize")
    }
}

fn template_name(err: &tera::Error) -> String {
    let text = err.to_string();
    text.split('\'').nth(1).unwrap_or("templates").to_string()
}

/// tera keeps the useful part of a message in its source chain.
fn chain(err: &tera::Error) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_quote_only_when_needed() {
        assert_eq!(
            yaml_scalar("--advertise-address=10.0.0.1"),
            "--advertise-address=10.0.0.1"
        );
        assert_eq!(yaml_scalar("/livez"), "/livez");
        assert_eq!(yaml_scalar("100m"), "100m");
        for needs_quotes in [
            "", "true", "6443", "a: b", "- x", "x #y", "*", "1.0", "null", "{a}",
        ] {
            let out = yaml_scalar(needs_quotes);
            assert!(out.starts_with('"'), "{needs_quotes:?} -> {out}");
            let back: String = serde_yaml::from_str(&out).unwrap();
            assert_eq!(back, needs_quotes);
        }
    }

    #[test]
    fn built_in_templates_parse() {
        Templates::built_in().unwrap();
        assert_eq!(names().count(), BUILT_IN.len());
    }
}
