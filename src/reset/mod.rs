//! `boot reset`: stops the agent and every pod, removes what init created (exactly what the ledger
//! lists), then checks that nothing is left. Carries on past failures and can be run again; never
//! follows a symlink out of the paths it owns.
//!
//! Touches: everything in the ledger, `/var/lib/boot/agent` records, the pods' cgroups and network
//! namespaces, `/etc/systemd/system/boot-agent.service`.

mod execute;
mod plan;
mod verify;

pub use execute::{execute, StepError};
pub use plan::{plan, ResetPlan};
pub use verify::{verify, Leftover};
