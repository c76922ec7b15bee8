//! The static pod source: which pods the manifest directory asks for (reference §7, design §5).
//! [`manifest`] parses one file ([`yaml`] under an expansion budget, [`validate`] as the API
//! server would), [`identity`] computes the kubelet-style UID, [`set`]
//! keeps the files' states with the last-good rule, and [`dir`] scans and watches the directory.

pub mod dir;
pub mod identity;
pub mod manifest;
pub mod set;
pub mod validate;
pub mod yaml;

pub use manifest::{ManifestError, StaticPod};
pub use set::{Desired, FileProblem, ManifestSet};
