//! Image references as the kubelet and containerd read them (reference §1): the
//! `distribution/reference` grammar, normalised so that `busybox` is
//! `docker.io/library/busybox:latest`, `index.docker.io` is `docker.io`, and a digest wins over a
//! tag (`name:tag@sha256:…` is `name@sha256:…`). Also the pull policy and its API default.

use std::fmt;
use std::str::FromStr;

use super::digest::Digest;

/// Docker Hub as the normalised name spells it.
pub const DOCKER_HUB: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";
/// `distribution/reference`: a name (domain + path) is at most 255 characters.
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `docker.io`, `registry.k8s.io`, `127.0.0.1:5000`, `localhost`.
    registry: String,
    /// `library/busybox`, `kube-apiserver`.
    repository: String,
    /// The tag as written; `None` when none was (then `latest` unless there is a digest).
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct RefError {
    pub reference: String,
    pub reason: String,
}

impl ImageRef {
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag the reference resolves by: none when there is a digest (the digest wins), else the
    /// written tag or `latest`.
    pub fn tag(&self) -> Option<&str> {
        match (&self.digest, &self.tag) {
            (Some(_), _) => None,
            (None, Some(tag)) => Some(tag),
            (None, None) => Some(DEFAULT_TAG),
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository at `digest` (a repo digest, `name@sha256:…`).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    /// The same repository and tag or digest on another registry host (a mirror).
    pub fn on_registry(&self, registry: &str) -> ImageRef {
        ImageRef {
            registry: registry.to_string(),
            ..self.clone()
        }
    }

    /// The kubelet's default `imagePullPolicy` (`SetDefaults_Container`): `Always` when the
    /// parsed tag is `latest`, written or not, `IfNotPresent` otherwise (digest-only references
    /// included).
    pub fn default_pull_policy(&self) -> PullPolicy {
        let tag_is_latest = match (&self.tag, &self.digest) {
            (Some(tag), _) => tag == DEFAULT_TAG,
            (None, Some(_)) => false,
            (None, None) => true,
        };
        if tag_is_latest {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotPresent
        }
    }
}

/// `registry/repository:tag` or `registry/repository@sha256:…`: the canonical string that the
/// store keys images by.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.digest, self.tag()) {
            (Some(digest), _) => write!(f, "{}/{}@{digest}", self.registry, self.repository),
            (None, Some(tag)) => write!(f, "{}/{}:{tag}", self.registry, self.repository),
            (None, None) => write!(f, "{}/{}", self.registry, self.repository),
        }
    }
}

impl FromStr for ImageRef {
    type Err = RefError;

    fn from_str(input: &str) -> Result<ImageRef, RefError> {
        let fail = |reason: &str| RefError {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(fail("empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(digest.parse::<Digest>().map_err(|e| fail(e.reason))?),
            ),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(fail("a tag is [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"));
            }
        }
        if name.len() > NAME_MAX {
            return Err(fail("the name is longer than 255 characters"));
        }
        let (mut registry, mut repository) = match name.split_once('/') {
            Some((first, path)) if is_registry(first) => (first.to_string(), path.to_string()),
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        if registry == "index.docker.io" {
            registry = DOCKER_HUB.to_string();
        }
        if !valid_registry(&registry) {
            return Err(fail("the registry must be host[:port]"));
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(fail("repository name must be lowercase"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(fail(
                "each path component is lowercase letters and digits separated by '.', '_', '__' or '-'",
            ));
        }
        if registry == DOCKER_HUB && !repository.contains('/') {
            repository = format!("library/{repository}");
        }
        Ok(ImageRef {
            registry,
            repository,
            tag: tag.map(str::to_string),
            digest,
        })
    }
}

/// `distribution/reference`: the first component is a registry when it is `localhost`, or has a
/// `.`, a `:` or an uppercase letter.
fn is_registry(first: &str) -> bool {
    first == "localhost"
        || first.contains(['.', ':'])
        || first.bytes().any(|b| b.is_ascii_uppercase())
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.strip_prefix('[') {
        // [v6]:port
        Some(rest) => match rest.split_once(']') {
            Some((host, port)) => (host, port.strip_prefix(':')),
            None => return false,
        },
        None => match registry.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok
        && tag.len() <= TAG_MAX
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl FromStr for PullPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<PullPolicy, String> {
        match s {
            "Always" => Ok(PullPolicy::Always),
            "IfNotPresent" => Ok(PullPolicy::IfNotPresent),
            "Never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "unknown imagePullPolicy {other:?} (Always, IfNotPresent or Never)"
            )),
        }
    }
}

impl PullPolicy {
    /// The policy a container gets: its own, else the API default for its image.
    pub fn for_container(written: Option<&str>, image: &ImageRef) -> Result<PullPolicy, String> {
        match written {
            Some(policy) if !policy.is_empty() => policy.parse(),
            _ => Ok(image.default_pull_policy()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        s.parse::<ImageRef>().unwrap().to_string()
    }

    #[test]
    fn normalises_like_the_kubelet_and_containerd() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.28.4"), "docker.io/library/busybox:1.28.4");
        assert_eq!(
            norm("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("user/app:v1"), "docker.io/user/app:v1");
        assert_eq!(
            norm("registry.k8s.io/kube-apiserver:v1.36.2"),
            "registry.k8s.io/kube-apiserver:v1.36.2"
        );
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/a/b:c"), "127.0.0.1:5000/a/b:c");
        assert_eq!(
            norm(&format!("busybox:1.28@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(norm(&format!("r.io/x@{D}")), format!("r.io/x@{D}"));
    }

    #[test]
    fn refuses_what_the_grammar_refuses() {
        for bad in [
            "",
            "Busybox",
            "r.io/Upper/x",
            "busybox:",
            "busybox:-x",
            "a//b",
            "a/../b",
            "busybox@sha256:abc",
            "r.io:port/x",
            "x/y_-z",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad:?} accepted");
        }
        assert!("a__b/c-d--e.f_g".parse::<ImageRef>().is_ok());
        assert!(format!("b:{}", "t".repeat(129))
            .parse::<ImageRef>()
            .is_err());
    }

    #[test]
    fn default_pull_policy_follows_the_written_tag() {
        let policy = |s: &str| s.parse::<ImageRef>().unwrap().default_pull_policy();
        assert_eq!(policy("busybox"), PullPolicy::Always);
        assert_eq!(policy("busybox:latest"), PullPolicy::Always);
        assert_eq!(policy("busybox:1.28.4"), PullPolicy::IfNotPresent);
        assert_eq!(policy(&format!("busybox@{D}")), PullPolicy::IfNotPresent);
        assert_eq!(policy(&format!("busybox:latest@{D}")), PullPolicy::Always);
        let image: ImageRef = "busybox".parse().unwrap();
        assert_eq!(
            PullPolicy::for_container(Some("Never"), &image),
            Ok(PullPolicy::Never)
        );
        assert!(PullPolicy::for_container(Some("Sometimes"), &image).is_err());
    }
}
