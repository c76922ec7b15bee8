//! What the OCI runtime needs from an image: its unpacked layers (bottom first) and the parts of
//! its configuration that shape the container (`User`, `Env`, `Entrypoint`, `Cmd`, `WorkingDir`,
//! `StopSignal`). The image store owns images; it hands them over as [`ImageRootfs`] through an
//! [`ImageSource`], so this module knows nothing of registries or digests beyond the id it shows.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

/// The `config` object of an OCI image configuration, reduced to what the runtime uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `user`, `uid`, `user:group`, `uid:gid`, … resolved in the image's `/etc/passwd` and `/etc/group`.
    pub user: Option<String>,
    /// `K=V` entries.
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    /// `SIGTERM`, `TERM` or a number.
    pub stop_signal: Option<String>,
}

/// An image ready to run: its layers, unpacked into directories, bottom layer first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRootfs {
    /// The image id (its config digest).
    pub id: String,
    /// `name@sha256:…`, the digest the registry serves the image under (the kubelet's
    /// `imageID`); `None` for an image with no registry digest.
    pub repo_digest: Option<String>,
    pub layers: Vec<PathBuf>,
    pub config: ImageConfig,
}

/// Where the runtime gets an image from by the reference a manifest names.
pub trait ImageSource: Send + Sync + 'static {
    /// The image for `reference`, or why there is none (the message names the reference).
    fn rootfs(&self, reference: &str) -> Result<ImageRootfs, String>;
    /// Whether the agent pulls images into this source before containers start (the image
    /// store); a fixed set of images is used as it is.
    fn pulled_by_agent(&self) -> bool {
        false
    }
}

/// A fixed set of images by reference: what tests and the benchmark give the runtime.
#[derive(Debug, Default)]
pub struct StaticImages {
    images: Mutex<HashMap<String, ImageRootfs>>,
}

impl StaticImages {
    pub fn new() -> StaticImages {
        StaticImages::default()
    }

    pub fn insert(&self, reference: impl Into<String>, image: ImageRootfs) {
        self.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.into(), image);
    }
}

impl ImageSource for StaticImages {
    fn rootfs(&self, reference: &str) -> Result<ImageRootfs, String> {
        self.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reference)
            .cloned()
            .ok_or_else(|| format!("image {reference:?} is not in the image store"))
    }
}

/// The image store is where the agent's OCI runtime finds images: the agent pulls them first
/// (per `imagePullPolicy`), so an image missing here is a store that changed underneath.
impl ImageSource for crate::image::Store {
    fn rootfs(&self, reference: &str) -> Result<ImageRootfs, String> {
        let image: crate::image::ImageRef = reference
            .parse()
            .map_err(|e| format!("image {reference:?}: {e}"))?;
        let local = self
            .resolve(&image)
            .map_err(|e| format!("image {reference:?}: {e}"))?
            .ok_or_else(|| format!("image {reference:?} is not in the image store"))?;
        Ok(ImageRootfs {
            id: local.id.to_string(),
            repo_digest: local.repo_digests.first().cloned(),
            layers: local.layers,
            config: runtime_config(&local.config),
        })
    }

    fn pulled_by_agent(&self) -> bool {
        true
    }
}

/// The parts of an image configuration the runtime uses.
fn runtime_config(image: &oci_spec::image::ImageConfiguration) -> ImageConfig {
    let Some(config) = image.config() else {
        return ImageConfig::default();
    };
    ImageConfig {
        user: config.user().clone().filter(|u| !u.is_empty()),
        env: config.env().clone().unwrap_or_default(),
        entrypoint: config.entrypoint().clone().unwrap_or_default(),
        cmd: config.cmd().clone().unwrap_or_default(),
        working_dir: config.working_dir().clone().filter(|w| !w.is_empty()),
        stop_signal: config.stop_signal().clone().filter(|s| !s.is_empty()),
    }
}
