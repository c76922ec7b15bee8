//! The Linux mechanics both runtimes are built from: per-container cgroups and their limits
//! ([`cgroup`], [`quantity`]), pod network namespaces ([`netns`]), processes pinned and signalled
//! through pidfds ([`proc`]), mount points ([`mounts`]), a pod's volumes ([`volumes`]), a
//! container's log relay ([`relay`]) and the capped output of an exec ([`output`]). Nothing here
//! knows which runtime calls it.

pub mod cgroup;
pub mod mounts;
pub mod netns;
pub mod output;
pub mod proc;
pub mod quantity;
pub mod relay;
pub mod volumes;
