//! Undoing a `boot join` that did not finish: the etcd member it added leaves the cluster first
//! (the journal `/var/lib/boot/join-etcd.json` says which), then everything the join's ledger
//! lists goes as `boot reset` removes it (the agent and its pods stopped, the files and
//! directories removed). Runs when a join fails or is interrupted (SIGINT, SIGTERM) after it
//! changed the host, and when a join finds the journal of an earlier join that was killed.
//!
//! When the member cannot be removed the files stay, the journal among them: `boot reset`
//! retries the removal from it.

use std::time::Duration;

use crate::config::Timeouts;
use crate::host::ledger::Ledger;
use crate::host::HostRoot;
use crate::join::etcd_journal::{self, JoinJournal};
use crate::reset;

/// Per etcd call while rolling back: short, the user is waiting (and may have pressed Ctrl-C).
const ROLLBACK: Duration = Duration::from_secs(10);

/// What undoing did, as lines for the user; `clean` when nothing of the join is left.
#[derive(Debug, Default)]
pub(super) struct Undone {
    pub lines: Vec<String>,
    pub clean: bool,
}

/// The journal of a join that never finished (not promoted): another join or a reset left
/// nothing to undo when there is none.
pub(super) fn unfinished(root: &HostRoot) -> Result<Option<JoinJournal>, String> {
    match JoinJournal::load(root) {
        Ok(journal) => Ok(journal.filter(|j| !j.promoted)),
        Err(e) => Err(e.to_string()),
    }
}

/// Removes the member the journal records (if any), then, when that worked and `files` is set,
/// everything the ledger lists. `files` is false when the ledger may not be this join's alone.
pub(super) async fn undo(root: &HostRoot, timeouts: &Timeouts, files: bool) -> Undone {
    let mut undone = Undone::default();
    let timeout = timeouts.etcd_api_call.0.min(ROLLBACK);
    match JoinJournal::load(root) {
        Ok(None) => {}
        Ok(Some(journal)) => match etcd_journal::roll_back(root, &journal, timeout).await {
            Ok(removal) => undone.lines.push(format!("rolled back: {removal}")),
            Err(e) => {
                undone.lines.push(format!(
                    "could NOT remove the etcd member this join added ({e}); remove it with \
                     `etcdctl member remove{}` before the cluster loses another member; the \
                     files stay for `boot reset`",
                    journal
                        .member
                        .map(|id| format!(" {id}"))
                        .unwrap_or_default()
                ));
                return undone;
            }
        },
        Err(e) => {
            undone
                .lines
                .push(format!("could not read the join journal to roll back: {e}"));
            return undone;
        }
    }
    if !files {
        undone.clean = true;
        return undone;
    }
    match remove_written(root).await {
        Ok(0) => undone.clean = true,
        Ok(count) => {
            undone.lines.push(format!(
                "rolled back: removed the {count} files this join wrote and stopped what it started"
            ));
            undone.clean = true;
        }
        Err(e) => undone
            .lines
            .push(format!("could not remove everything this join wrote ({e})")),
    }
    undone
}

/// `boot reset`'s steps for what the ledger lists; the number of files removed.
async fn remove_written(root: &HostRoot) -> Result<usize, String> {
    let ledger = Ledger::load(root).map_err(|e| e.to_string())?;
    let Some(ledger) = ledger else {
        return Ok(0);
    };
    let plan = reset::plan(root, Some(&ledger)).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    let failures = reset::execute(&plan, root, &mut lines).await;
    if let Some(failure) = failures.first() {
        return Err(format!("failed to {}: {}", failure.step, failure.error));
    }
    Ok(lines
        .iter()
        .filter(|l| l.starts_with("[reset] Removed"))
        .count())
}
