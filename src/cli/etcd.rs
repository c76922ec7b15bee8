//! `boot etcd snapshot save|ls|prune|restore`: snapshots of this node's etcd member and
//! restoring one (k3s's and RKE2's `etcd-snapshot`; kubeadm has none).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::load::{load_effective, ConfigFlags};
use super::{CliError, ExitCode, GlobalArgs};
use crate::config::Config;
use crate::etcd::local::LocalMember;
use crate::etcd::snapshot::restore::{journal, Restore, RestoreError};
use crate::etcd::snapshot::{self, list, Kind, SnapshotError, SnapshotName};
use crate::etcd::EtcdClient;
use crate::host::HostRoot;

/// A snapshot of a store of a few GB streams in well under this.
const SAVE_TIMEOUT: Duration = Duration::from_secs(600);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_MANIFEST: u64 = 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// etcd snapshots: save, list, prune, restore.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save a snapshot of this node's etcd member (Maintenance API), checked before it is named.
    Save(SaveArgs),
    /// List the snapshots in the snapshot directory with size, time and revision.
    Ls(LsArgs),
    /// Remove all but the newest N snapshots boot named (files of other names stay).
    Prune(PruneArgs),
    /// Restore a snapshot into a new single-member cluster on this node (the data directory is
    /// kept aside); run it again to finish an interrupted restore.
    Restore(RestoreArgs),
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// Where to save it [default: <snapshot directory>/on-demand-<node>-<UTC time>.db].
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// `table` or `json`.
    #[arg(short, long, default_value = "table")]
    pub output: String,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// How many of the newest to keep.
    #[arg(long, value_name = "N")]
    pub keep: usize,
    /// Only snapshots of this kind (all boot's kinds by default).
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot file.
    pub file: PathBuf,
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
    #[command(flatten)]
    pub flags: ConfigFlags,
}

pub fn run(command: EtcdCommand, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let EtcdCommand::Snapshot(command) = command;
    match command {
        SnapshotCommand::Save(args) => {
            let cfg = load_effective(global, &root, &args.flags)?;
            save(&root, &cfg, args.file)
        }
        SnapshotCommand::Ls(args) => {
            let cfg = load_effective(global, &root, &args.flags)?;
            ls(&snapshot_dir(&root, &cfg), &args.output)
        }
        SnapshotCommand::Prune(args) => {
            let cfg = load_effective(global, &root, &args.flags)?;
            let kinds: Vec<Kind> = args.kind.into_iter().collect();
            let removed = list::prune(&snapshot_dir(&root, &cfg), args.keep, &kinds)
                .map_err(snapshot_error)?;
            for path in &removed {
                println!("[snapshot] Removed {}", path.display());
            }
            println!(
                "[snapshot] {} removed, the newest {} kept",
                removed.len(),
                args.keep
            );
            Ok(ExitCode::Ok)
        }
        SnapshotCommand::Restore(args) => {
            let cfg = load_effective(global, &root, &args.flags)?;
            restore(&root, &cfg, &args.file, args.yes)
        }
    }
}

pub fn snapshot_dir(root: &HostRoot, cfg: &Config) -> PathBuf {
    root.path(&cfg.boot.etcd_snapshots.directory)
}

/// A client for this node's own member, from its manifest (the snapshot is of the member this
/// node runs, as `etcdctl --endpoints=<local> snapshot save`).
pub fn local_member(root: &HostRoot, cfg: &Config) -> Result<EtcdClient, CliError> {
    let path = root.path(&cfg.static_pod_path).join("etcd.yaml");
    let bytes = crate::host::read_bounded(&path, MAX_MANIFEST, crate::host::Links::Refuse)
        .map_err(|e| {
            CliError::new(ExitCode::Files, format!("{}: {e}", path.display())).with_hint(
                "snapshots are of a stacked etcd member this node runs (boot init or join)",
            )
        })?;
    let member = LocalMember::from_manifest(&path, &bytes, root.prefix())
        .map_err(|e| CliError::new(ExitCode::Files, e.to_string()))?;
    EtcdClient::new(&member.client_urls, &member.client_files, CONNECT_TIMEOUT)
        .map_err(|e| CliError::new(ExitCode::Files, e.to_string()))
}

fn save(root: &HostRoot, cfg: &Config, file: Option<PathBuf>) -> Result<ExitCode, CliError> {
    let client = local_member(root, cfg)?;
    let destination = file.unwrap_or_else(|| {
        snapshot_dir(root, cfg)
            .join(SnapshotName::new(Kind::OnDemand, &cfg.node_name, SystemTime::now()).file_name())
    });
    let runtime = super::async_runtime(0)?;
    let saved = runtime
        .block_on(snapshot::save(&client, &destination, SAVE_TIMEOUT))
        .map_err(snapshot_error)?;
    println!(
        "[snapshot] Saved {} ({}, revision {}, sha256 {}…) in {:.1}s",
        saved.path.display(),
        size(saved.checked.size),
        revision(Some(saved.checked.revision)),
        &saved.checked.sha256[..12],
        saved.took.as_secs_f64()
    );
    Ok(ExitCode::Ok)
}

fn ls(dir: &Path, output: &str) -> Result<ExitCode, CliError> {
    let entries = list::list(dir).map_err(snapshot_error)?;
    match output {
        "json" => {
            let rows: Vec<serde_json::Value> = entries
                .iter()
                .map(|e| {
                    serde_json::json!({
                        "name": e.path.file_name().map(|n| n.to_string_lossy()),
                        "path": e.path,
                        "kind": e.name.as_ref().map(|n| n.kind.as_str()),
                        "node": e.name.as_ref().map(|n| n.node.clone()),
                        "size": e.size,
                        "taken": list::display_time(e.taken),
                        "revision": e.revision.flatten(),
                        "valid": e.revision.is_some(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
        }
        "table" => {
            if entries.is_empty() {
                println!("No snapshots in {}", dir.display());
                return Ok(ExitCode::Ok);
            }
            let width = entries
                .iter()
                .map(|e| e.path.file_name().map_or(0, |n| n.len()))
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:width$}  {:>10}  {:20}  REVISION",
                "NAME", "SIZE", "TAKEN"
            );
            for e in &entries {
                println!(
                    "{:width$}  {:>10}  {:20}  {}",
                    e.path.file_name().unwrap_or_default().to_string_lossy(),
                    size(e.size),
                    list::display_time(e.taken),
                    revision(e.revision)
                );
            }
        }
        other => {
            return Err(CliError::usage(
                format!("-o {other}: unknown output format"),
                "use -o table or -o json",
            ))
        }
    }
    Ok(ExitCode::Ok)
}

fn restore(root: &HostRoot, cfg: &Config, file: &Path, yes: bool) -> Result<ExitCode, CliError> {
    let restore = Restore {
        snapshot: file.to_path_buf(),
        root: root.clone(),
        manifest_dir: root.path(&cfg.static_pod_path),
        kubernetes_dir: root.path("/etc/kubernetes"),
        journal_path: root.path(journal::JOURNAL_FILE),
        agent_socket: root.path("/run/boot/agent.sock"),
        etcd_release: cfg.etcd_version.clone(),
    };
    let runtime = super::async_runtime(0)?;
    let prepared = runtime.block_on(restore.prepare()).map_err(restore_error)?;
    let checked = &prepared.checked;
    println!(
        "[restore] {} is a valid snapshot: {}, revision {}, sha256 {}…",
        file.display(),
        size(checked.size),
        revision(Some(checked.revision)),
        &checked.sha256[..12]
    );
    if prepared.resumed {
        println!(
            "[restore] Continuing the restore recorded in {} at: {:?}",
            restore.journal_path.display(),
            prepared.journal.step
        );
    } else {
        println!(
            "[restore] This stops {} on this node, keeps the data directory {} as {}, and \
             starts etcd from the snapshot as a new single-member cluster ({}).",
            prepared.journal.moved.join(", "),
            prepared.journal.data_dir.display(),
            prepared.journal.kept.display(),
            prepared.etcd.name
        );
        if !prepared.others.is_empty() {
            println!(
                "[restore] The other members ({}) are not running; they leave the cluster and \
                 must join it again afterwards.",
                prepared.others.join(", ")
            );
        }
        if !yes && !confirm()? {
            println!("[restore] Aborted; nothing was changed.");
            return Ok(ExitCode::Unhealthy);
        }
    }
    let outcome = runtime
        .block_on(restore.run(prepared, &mut |line| println!("[restore] {line}")))
        .map_err(restore_error)?;
    println!(
        "\n[restore] Done in {:.1}s: etcd and the API server serve the snapshot's data. The \
         previous data is kept in {} (remove it when you no longer need it).",
        outcome.took.as_secs_f64(),
        outcome.kept.display()
    );
    if !outcome.others.is_empty() {
        println!(
            "[restore] To bring the other control-plane nodes back ({}): on each of them run \
             `boot reset --force`; then here `boot token create --print-join-command` and `boot \
             init phase upload-certs --upload-certs`, and on each of them the printed `boot join \
             … --control-plane --certificate-key KEY`.",
            outcome.others.join(", ")
        );
    }
    Ok(ExitCode::Ok)
}

fn confirm() -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(
            "a restore replaces the cluster's data and asks for confirmation",
            "pass --yes to restore without asking",
        ));
    }
    print!("[restore] Proceed? [y/N]: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::new(ExitCode::Usage, "cannot read the answer").with_cause(e))?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn revision(revision: Option<Option<u64>>) -> String {
    match revision {
        Some(Some(r)) => r.to_string(),
        Some(None) => "empty".into(),
        None => "unreadable".into(),
    }
}

pub fn snapshot_error(err: SnapshotError) -> CliError {
    let (code, hint) = match &err {
        SnapshotError::Invalid { .. } => (
            ExitCode::Files,
            "the file is damaged or not a snapshot saved through etcd's Maintenance API",
        ),
        SnapshotError::Exists { .. } => (ExitCode::Usage, "choose another file name"),
        SnapshotError::Io { .. } => (
            ExitCode::Files,
            "check the path, its permissions and free space",
        ),
        SnapshotError::Stream { .. } | SnapshotError::Etcd(_) => (
            ExitCode::Unhealthy,
            "check `boot status` and `boot logs etcd`; nothing was written",
        ),
    };
    CliError::new(code, err.to_string()).with_hint(hint)
}

fn restore_error(err: RestoreError) -> CliError {
    let code = match &err {
        RestoreError::Snapshot(SnapshotError::Invalid { .. }) => ExitCode::Files,
        RestoreError::Snapshot(_) | RestoreError::Manifest { .. } | RestoreError::Io { .. } => {
            ExitCode::Files
        }
        RestoreError::Journal { .. } => ExitCode::Files,
        RestoreError::OtherSnapshot { .. } | RestoreError::OthersRunning { .. } => ExitCode::Usage,
        RestoreError::RolledBack { .. } | RestoreError::Stuck { .. } => ExitCode::Unhealthy,
    };
    let hint = err.hint();
    CliError::new(code, err.to_string()).with_hint(hint)
}
