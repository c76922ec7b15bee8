//! The configuration: kubeadm's v1beta4 documents plus boot's `BootConfiguration`, defaulted as
//! kubeadm defaults them, overridden by flags, resolved against the host (node name, advertise
//! address, component versions) and validated. Pure: what the host says comes in as [`HostFacts`], gathered by `host::facts`.

mod boot;
mod error;
mod join;
mod kubeadm;
mod load;
mod resolve;
mod types;
mod validate;

pub use boot::{
    AgentConfiguration, AgentMode, Backoff, BootConfiguration, EtcdSnapshots, NetworkConfiguration,
    RegistriesConfiguration, RegistryHostConfig, RegistryMirror, RuntimeKind, BOOT_API_VERSION,
};
pub use error::ConfigError;
pub use join::{BootstrapTokenDiscovery, Discovery, JoinConfiguration, JoinControlPlane};
pub use kubeadm::{
    ApiEndpoint, ApiServer, ClusterConfiguration, ControlPlaneComponent, Etcd, ExternalEtcd,
    InitConfiguration, LocalEtcd, Networking, NodeRegistration, Timeouts, KUBEADM_API_VERSION,
};
pub use load::{parse, too_deep, DocumentSource, Documents, MAX_FLOW_DEPTH};
pub use resolve::{Config, HostFacts, Overrides};
pub use types::{
    bracket_host, extra_value, is_dns_name, Arg, Cidrs, Endpoint, EnvVar, GoDuration,
    HostPathMount, HostPathType, Ip,
};
