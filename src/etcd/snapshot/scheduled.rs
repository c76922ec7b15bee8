//! Scheduled snapshots, run beside the agent (`BootConfiguration.etcdSnapshots`): at each time
//! the cron [`Schedule`] names, a snapshot of this node's etcd member is saved as
//! `scheduled-<node>-<UTC time>.db` and the scheduled snapshots beyond `retention` are removed
//! (snapshots saved by hand or before an upgrade are never removed here). A node without an etcd
//! manifest (external etcd, a worker) takes none. A failed snapshot is reported in the agent's
//! log and tried again at the next time; nothing else waits on it.
//!
//! Touches: reads the etcd manifest and the client certificate it names; writes the snapshot
//! directory.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::list::{self, Kind, SnapshotName};
use super::Schedule;
use crate::etcd::local::LocalMember;
use crate::etcd::EtcdClient;
use crate::host::HostRoot;

/// The longest sleep before the clock is looked at again (a suspended host, a clock step).
const MAX_SLEEP: Duration = Duration::from_secs(60);
const SAVE_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_MANIFEST: u64 = 1024 * 1024;

#[derive(Debug, Clone)]
pub struct Scheduled {
    pub schedule: Schedule,
    pub retention: usize,
    /// The snapshot directory, under the root.
    pub directory: PathBuf,
    pub node_name: String,
    /// The manifest directory, under the root.
    pub manifest_dir: PathBuf,
    pub root: HostRoot,
}

/// Takes snapshots on the schedule until the task is dropped.
pub async fn run(scheduled: Scheduled) {
    println!(
        "[agent] etcd snapshots on \"{}\" (UTC), the newest {} kept in {}",
        scheduled.schedule,
        scheduled.retention,
        scheduled.directory.display()
    );
    loop {
        let now = crate::certs::unix(SystemTime::now());
        let Some(next) = scheduled.schedule.next_after(now) else {
            println!("[agent] etcd snapshots: the schedule names no time in the next 8 years");
            return;
        };
        // Short sleeps: the next time is measured on the wall clock, which may jump.
        while crate::certs::unix(SystemTime::now()) < next {
            let left = (next - crate::certs::unix(SystemTime::now())).max(1) as u64;
            tokio::time::sleep(Duration::from_secs(left).min(MAX_SLEEP)).await;
        }
        match take(&scheduled).await {
            Ok(Some(line)) => println!("[agent] {line}"),
            Ok(None) => {}
            Err(e) => println!("[agent] etcd snapshot failed (tried again at the next time): {e}"),
        }
    }
}

/// One scheduled snapshot and the pruning after it; `None` when this node runs no etcd member.
pub async fn take(scheduled: &Scheduled) -> Result<Option<String>, String> {
    let manifest = scheduled.manifest_dir.join("etcd.yaml");
    let Some(bytes) =
        crate::host::read_bounded_if_exists(&manifest, MAX_MANIFEST, crate::host::Links::Refuse)
            .map_err(|e| format!("{}: {e}", manifest.display()))?
    else {
        return Ok(None);
    };
    let member = LocalMember::from_manifest(&manifest, &bytes, scheduled.root.prefix())
        .map_err(|e| e.to_string())?;
    let client = EtcdClient::new(&member.client_urls, &member.client_files, CONNECT_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let name = SnapshotName::new(Kind::Scheduled, &scheduled.node_name, SystemTime::now());
    let saved = super::save(
        &client,
        &scheduled.directory.join(name.file_name()),
        SAVE_TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let removed = list::prune(
        &scheduled.directory,
        scheduled.retention,
        &[Kind::Scheduled],
    )
    .map_err(|e| e.to_string())?;
    Ok(Some(format!(
        "etcd snapshot {} saved ({} bytes, {:.1}s); {} older scheduled snapshot(s) removed",
        saved.path.display(),
        saved.checked.size,
        saved.took.as_secs_f64(),
        removed.len()
    )))
}
