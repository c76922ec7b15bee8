//! Images: pull, verify, store and import OCI images (design §8 "image"), so that `boot init`
//! needs nothing preinstalled. No knowledge of pods: the agent and the OCI runtime call in.
//!
//! The contract with the OCI runtime:
//!
//! ```text
//! let store = Store::open(&root)?;                        // /var/lib/boot/images
//! store.resolve(&image)?            -> Option<LocalImage> // present? never touches the network
//! store.ensure(&image, policy, &registries, progress)     // the kubelet's pull policy
//!     .await?                       -> LocalImage
//! LocalImage { id, manifest_digest, repo_digests, config, layers, .. }
//! ```
//!
//! `id` is the config digest (containerd's image ID); `repo_digests` are `name@sha256:…` (a
//! container's `imageID`); `config` is `oci_spec::image::ImageConfiguration` (Entrypoint, Cmd,
//! Env, WorkingDir, User, ExposedPorts); `layers` are unpacked directories **bottom first**, in
//! overlayfs form (whiteouts as 0/0 character devices, opaque directories as
//! `trusted.overlay.opaque=y`), ready to be lower dirs: `lowerdir=` lists them top first.
//!
//! Host paths: `/var/lib/boot/images` (see [`store`]), the kubelet's credentials file
//! `/var/lib/kubelet/config.json` (see [`registries`]).

pub mod digest;
mod error;
pub mod gc;
pub mod import;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registries;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use error::{ImageError, RegistryFailure};
pub use pull::{pull, Progress, Quiet};
pub use reference::{ImageRef, PullPolicy, RefError};
pub use registries::Registries;
pub use store::{LocalImage, Store, STORE_PATH};
