//! Container logs in the CRI log format (`<RFC3339Nano> <stream> <F|P> <content>`, the format the
//! kubelet's `kubectl logs` reads) under `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`.
//!
//! Containers write into pipes read by a small relay process per container ([`relay`], run as
//! `boot log-relay`), not by the agent: the agent may be restarted (or killed) while the
//! control plane keeps running (design §5 ★), and a pipe whose reader died would kill the writer
//! with SIGPIPE or block it once full. The relay survives the agent, formats, rotates by size, and
//! exits when the container's pipes close. [`files`] finds the files back for `boot logs`.

pub mod cri;
pub mod files;
pub mod relay;

/// The kubelet's `containerLogMaxSize` default (10 Mi).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// The kubelet's `containerLogMaxFiles` default (5: the current file and four rotated ones).
pub const DEFAULT_MAX_FILES: u32 = 5;
