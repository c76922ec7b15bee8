//! `boot join`: a second (third, …) control-plane node joins a cluster boot or kubeadm created.
//! This branch's part: the etcd journal and rollback ([`etcd_journal`]).

pub mod etcd_join;
pub mod etcd_journal;
