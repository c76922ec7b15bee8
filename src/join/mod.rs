//! What joining a node needs, on both sides: the bootstrap token, the CA pin and the certificate
//! key ([`token`]); the token's Secret ([`token_secret`]); the signed `kube-public/cluster-info`
//! ([`cluster_info`], [`jws`]); the encrypted `kube-system/kubeadm-certs` ([`upload_certs`],
//! [`cipher`]); bootstrap-token discovery ([`discovery`]) and file discovery
//! ([`file_discovery`]), either as a join asks ([`discovery_mode`]). All wire formats are kubeadm's,
//! so `kubeadm join` works against a `boot` control plane and the other way round. `boot init`
//! writes the objects in its post-boot phases (`crate::postboot`); `boot join` reads them.
//!
//! `boot join --control-plane` itself is [`run`]; its etcd membership is [`etcd_join`], made
//! undoable by the journal in [`etcd_journal`].

pub mod cipher;
pub mod cluster_info;
pub mod credentials;
pub mod discovery;
pub mod discovery_mode;
pub mod etcd_join;
pub mod etcd_journal;
pub mod file_discovery;
pub mod jws;
pub mod run;
pub mod token;
pub mod token_secret;
pub mod upload_certs;

pub use cluster_info::ClusterInfo;
pub use credentials::JoinCredentials;
pub use discovery::{discover, DiscoveryError};
pub use discovery_mode::{JoinDiscovery, JoinDiscoveryError};
pub use file_discovery::{
    discover_file, DiscoveryFile, FileDiscovered, FileDiscoveryError, WebRoots,
};
pub use token::{BootstrapToken, CaCertHash, CertificateKey, FormatError};
pub use token_secret::TokenSpec;
pub use upload_certs::{download, SharedCertificates, UploadCertsError};
