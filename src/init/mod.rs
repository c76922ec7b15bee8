//! `boot init`: preflight → certs → kubeconfig → etcd → control-plane → agent →
//! wait-control-plane → post-boot, as kubeadm's phases (reference §1), with the agent in place of
//! the kubelet.

pub mod agent_launch;
pub mod diagnose;
pub mod health;
pub mod images;
pub mod phases;
pub mod run;
pub mod wait;
