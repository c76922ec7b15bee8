//! Image errors: each names the image, registry, blob or file it is about; [`ImageError::hint`]
//! says what a user can do about it.

use std::io;
use std::path::PathBuf;

use super::digest::Digest;
use super::reference::RefError;
use super::unpack::UnpackError;

/// Why a registry request failed, as far as the user can act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryFailure {
    /// 404 / MANIFEST_UNKNOWN / NAME_UNKNOWN.
    NotFound,
    /// 401 / 403.
    Unauthorized,
    /// Connection refused, DNS, TLS, timeout.
    Unreachable,
    /// Any other answer.
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Reference(#[from] RefError),
    #[error("{field}: {reason}")]
    Config { field: String, reason: String },
    #[error("image store {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{what} is larger than {max} bytes")]
    TooLarge { what: String, max: u64 },
    #[error("{what}: digest mismatch: expected {expected}, got {actual}; refused")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what}: size mismatch: expected {expected} bytes, got {actual}; refused")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("unpacking layer {layer}")]
    Unpack {
        layer: Digest,
        #[source]
        source: UnpackError,
    },
    #[error("pulling {image} from {registry}: {detail}")]
    Registry {
        image: String,
        registry: String,
        failure: RegistryFailure,
        detail: String,
    },
    #[error("{image}: {detail}")]
    Manifest { image: String, detail: String },
    #[error("{image} has no linux/{arch} image in its index")]
    NoPlatform { image: String, arch: String },
    #[error("{image} is not present and its imagePullPolicy is Never")]
    NeverPull { image: String },
    #[error("importing {path}: {reason}")]
    Import { path: PathBuf, reason: String },
    #[error("{0}")]
    Join(String),
}

impl ImageError {
    /// What a user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            ImageError::Registry { failure, .. } => match failure {
                RegistryFailure::NotFound => {
                    "check the image name and tag; for an air-gapped host use `boot images import`"
                }
                RegistryFailure::Unauthorized => {
                    "add credentials under BootConfiguration registries.configs or in /var/lib/kubelet/config.json"
                }
                RegistryFailure::Unreachable => {
                    "check the network, or configure a mirror (registries.mirrors) or use `boot images import`"
                }
                RegistryFailure::Other => "configure a mirror (registries.mirrors) or use `boot images import`",
            },
            ImageError::DigestMismatch { .. } | ImageError::SizeMismatch { .. } => {
                "the registry served content that does not match its digest; check the registry or mirror"
            }
            ImageError::Unpack { .. } => "the image contains a layer boot will not unpack; rebuild it",
            ImageError::NeverPull { .. } => {
                "import the image with `boot images import` or set imagePullPolicy to IfNotPresent"
            }
            ImageError::NoPlatform { .. } => "use an image built for this architecture",
            ImageError::Reference(_) => "images are written [registry/]name[:tag][@sha256:digest]",
            ImageError::Corrupt { .. } => "remove the file, or run `boot images prune` and pull again",
            ImageError::Import { .. } => {
                "give an OCI layout (directory or tar, as `skopeo copy … oci-archive:` writes) or a `docker save` tar"
            }
            _ => return None,
        })
    }

    /// The kubelet's waiting reason for this failure (`images/types.go`; the image manager reports
    /// every failed pull as `ErrImagePull`).
    pub fn kubelet_reason(&self) -> &'static str {
        match self {
            ImageError::Reference(_) => "InvalidImageName",
            ImageError::NeverPull { .. } => "ErrImageNeverPull",
            _ => "ErrImagePull",
        }
    }
}
