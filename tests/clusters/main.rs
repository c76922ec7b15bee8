//! Whole-cluster scenarios: `boot init` brings up etcd and the control plane (the real v1.36.2
//! components with `BOOT_K8S_BIN`, the stand-in otherwise) and each test drives it through one
//! story. They live in one test binary because most of their time is spent waiting — for
//! certificate windows, the API server's once-a-minute reload, grace periods — and libtest runs
//! the tests of one binary in parallel, while cargo runs binaries one after another. Every test
//! has its own temporary root, free ports and a guard that resets it.
//!
//! `cargo test --test clusters` runs them all; `cargo test --test clusters secrets_real` one file.

#[path = "../common/cluster.rs"]
mod cluster;

mod certs_foreground;
mod certs_real;
mod init_real;
mod join_data_real;
mod join_ha;
mod node_api;
mod secrets_real;
mod snapshot_real;
