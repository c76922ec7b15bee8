//! What `boot init` and `boot join --control-plane` share to bring this node's control plane up,
//! below both: recording what they are about to write in the ledger before writing it
//! ([`record`]), the effective configuration the agent runs with, starting the agent so that it
//! outlives the command ([`agent_launch`]), and waiting for the components with a diagnosis when
//! one does not come up ([`wait`], [`health`], [`diagnose`]).

pub mod agent_launch;
pub mod diagnose;
pub mod health;
pub mod record;
pub mod wait;

pub use record::{effective_config, effective_config_file, NodeLedger, RecordError};
