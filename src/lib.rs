//! `boot` bootstraps a Kubernetes control plane the way `kubeadm init` does, without a kubelet or
//! a container runtime: it issues the PKI and kubeconfigs, renders the four static pod manifests,
//! runs them with its embedded static pod agent and tears everything down again with `boot reset`.
//!
//! Data flows one way (design §3): [`config`] → [`pki`] / [`render`] (pure, in memory, all or
//! nothing) → [`host`] writes → [`agent`] runs. `main.rs` only calls [`cli::main`].

pub mod addons;
pub mod agent;
pub mod certs;
pub mod cli;
pub mod config;
pub mod controlplane;
pub mod cri;
pub mod etcd;
pub mod host;
pub mod http;
pub mod image;
pub mod init;
pub mod join;
pub mod kubeapi;
pub mod node;
pub mod phases;
pub mod pki;
pub mod postboot;
pub mod preflight;
pub mod probe;
pub mod render;
pub mod reset;
pub mod runtime;
pub mod secrets;
pub mod version;
