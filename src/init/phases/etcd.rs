//! kubeadm's `etcd` (`etcd/local`): the local etcd's static pod manifest; nothing with external
//! etcd.

use super::control_plane::StaticPod;

pub const ETCD: StaticPod = StaticPod {
    name: "etcd",
    component: "etcd",
    summary: "Write the static pod manifest for the local etcd",
};
