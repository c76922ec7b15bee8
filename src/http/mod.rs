//! `boot`'s one HTTP implementation, on hyper 1 (already linked through kube): [`client`] sends
//! one request on a connection the caller opened and reads a bounded answer (probes, `boot
//! init`'s health polling, the status client); [`server`] runs an accept loop hardened against
//! misbehaving local clients (the agent's status endpoints, later the :10250 API); [`tls`] builds
//! the client TLS configurations (verified, or unverified-then-pinned for discovery). None
//! touches a host path; the callers open sockets.

pub mod client;
pub mod server;
pub mod tls;
