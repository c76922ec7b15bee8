//! Manifests, indexes and image configs, OCI and Docker schema 2 alike (reference §3), parsed into
//! validated types: every digest is a [`Digest`] before anything uses it as a path, and an index
//! resolves to the first entry for this host's platform.

use serde::Deserialize;

use super::digest::Digest;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// What boot asks registries for.
pub const ACCEPTED: &[&str] = &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
}

/// An image manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, Deserialize)]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// A manifest document as fetched: either kind.
#[derive(Debug, Clone)]
pub enum Fetched {
    Index(Index),
    Manifest(Manifest),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

impl Fetched {
    /// Tells an index from a manifest by `mediaType`, else by shape (the field is optional).
    pub fn parse(bytes: &[u8]) -> Result<Fetched, String> {
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let is_index = match probe.media_type.as_deref() {
            Some(OCI_INDEX | DOCKER_LIST) => true,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            Some(other) if probe.manifests.is_none() => {
                return Err(format!("unsupported manifest media type {other}"));
            }
            _ => probe.manifests.is_some(),
        };
        if is_index {
            serde_json::from_slice(bytes)
                .map(Fetched::Index)
                .map_err(|e| e.to_string())
        } else {
            Manifest::parse(bytes).map(Fetched::Manifest)
        }
    }
}

impl Manifest {
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not an image manifest: {e}"))
    }
}

impl Index {
    /// The first entry for `linux/<arch>` (image-index.md: the first match wins), skipping
    /// BuildKit attestation entries.
    pub fn select(&self, arch: &str) -> Option<&Descriptor> {
        self.manifests.iter().find(|d| {
            let attestation = d
                .annotations
                .get("vnd.docker.reference.type")
                .is_some_and(|t| t == "attestation-manifest");
            !attestation
                && d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
        })
    }
}

/// The host's architecture in GOARCH spelling.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "arm" => "arm",
        other => other,
    }
}

/// An image config with its diff_ids validated against the manifest's layer count.
#[derive(Debug, Clone)]
pub struct ImageConfig {
    pub spec: oci_spec::image::ImageConfiguration,
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8], layer_count: usize) -> Result<ImageConfig, String> {
        let spec: oci_spec::image::ImageConfiguration =
            serde_json::from_slice(bytes).map_err(|e| format!("not an image config: {e}"))?;
        if spec.rootfs().typ() != "layers" {
            return Err(format!(
                "rootfs.type is {:?}, not \"layers\"",
                spec.rootfs().typ()
            ));
        }
        let diff_ids = spec
            .rootfs()
            .diff_ids()
            .iter()
            .map(|d| d.parse::<Digest>().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if diff_ids.len() != layer_count {
            return Err(format!(
                "{} diff_ids for {layer_count} layers",
                diff_ids.len()
            ));
        }
        Ok(ImageConfig { spec, diff_ids })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn index_selects_the_first_platform_match_and_skips_attestations() {
        let json = format!(
            r#"{{"mediaType":"{OCI_INDEX}","manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{A}","size":1,"platform":{{"architecture":"unknown","os":"unknown"}}}},
            {{"digest":"{A}","size":1,"platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"vnd.docker.reference.type":"attestation-manifest"}}}},
            {{"digest":"{B}","size":2,"platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"digest":"{A}","size":3,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#
        );
        let Fetched::Index(index) = Fetched::parse(json.as_bytes()).unwrap() else {
            panic!("not an index")
        };
        assert_eq!(index.select("amd64").unwrap().digest.to_string(), B);
        assert!(index.select("s390x").is_none());
    }

    #[test]
    fn manifests_with_bad_digests_are_refused() {
        let json = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{A}","size":1}},"layers":[{{"digest":"sha256:../../x","size":1}}]}}"#
        );
        assert!(Fetched::parse(json.as_bytes()).is_err());
        let ok = json.replace("sha256:../../x", B);
        assert!(
            matches!(Fetched::parse(ok.as_bytes()), Ok(Fetched::Manifest(m)) if m.layers.len() == 1)
        );
    }

    #[test]
    fn config_diff_ids_must_match_the_layers() {
        let json = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{A}"]}}}}"#
        );
        let config = ImageConfig::parse(json.as_bytes(), 1).unwrap();
        assert_eq!(config.diff_ids.len(), 1);
        assert!(ImageConfig::parse(json.as_bytes(), 2).is_err());
    }
}
