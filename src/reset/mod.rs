//! `boot reset`: stops the agent and every pod, removes what init created (exactly what the ledger
//! lists, once [`validate`](validate::validate) accepted it), then checks that nothing is left.
//! Carries on past failures and keeps the ledger when a step failed, so that it can be run again;
//! removes with fd-relative calls beneath the root ([`remove`]), never following a symlink.
//!
//! Touches: everything in the ledger, `/var/lib/boot/agent` records, the pods' cgroups and network
//! namespaces, `/etc/systemd/system/boot-agent.service`.

mod agent;
mod etcd_member;
mod execute;
mod plan;
mod remove;
mod validate;
mod verify;

pub use etcd_member::{remove_own_member, MemberError};
pub use execute::{execute, StepError};
pub use plan::{plan, ResetPlan};
pub use validate::LedgerError;
pub use verify::{verify, Leftover};
