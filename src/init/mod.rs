//! `boot init`: kubeadm's init phases (reference §1), with the agent in place of the kubelet, as
//! one ordered list ([`PHASES`]) on the phase runner (`crate::phases`): preflight → certs →
//! kubeconfig → etcd → control-plane/{apiserver,controller-manager,scheduler} → kubelet-start →
//! wait-control-plane → upload-config → upload-certs → mark-control-plane → bootstrap-token.
//!
//! Everything the selected phases write is rendered in memory first ([`InitContext::new`]): a
//! template or PKI error writes nothing. Each writing phase records its files in the ledger
//! before writing them.

pub mod context;
pub mod images;
pub mod phases;

pub use context::{
    ForegroundAgent, InitContext, InitError, InitRequest, JoinData, StartForeground,
};
pub use phases::PHASES;

use std::path::PathBuf;

use crate::host::HostRoot;

/// Where `admin.conf` is, for the closing message.
pub fn admin_conf(root: &HostRoot) -> PathBuf {
    root.path(crate::host::layout::KUBERNETES_DIR)
        .join(crate::postboot::ADMIN_CONF)
}
