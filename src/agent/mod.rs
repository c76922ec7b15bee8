//! The static pod agent (design §5): a small kubelet for static pods only.
pub mod backoff;
pub mod source;
