//! `boot reset`: confirm, stop the agent and the pods, remove what init created, and prove that
//! nothing is left.

use std::io::{BufRead, Write};

use clap::Args;

use super::{CliError, ExitCode, GlobalArgs};
use crate::agent::records;
use crate::host::ledger::Ledger;
use crate::reset;
use crate::runtime::network;

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Print what would be done; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep the image store (/var/lib/boot/images), so a new init pulls nothing.
    #[arg(long)]
    pub keep_images: bool,
    /// Keep the etcd snapshots (BootConfiguration.etcdSnapshots.directory,
    /// /var/lib/boot/snapshots by default), to restore one after a new init.
    #[arg(long)]
    pub keep_snapshots: bool,
}

pub fn run(args: ResetArgs, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let ledger = Ledger::load(&root).map_err(|e| {
        CliError::new(
            ExitCode::Files,
            format!(
                "cannot read the init ledger {}: {e}",
                Ledger::path(&root).display()
            ),
        )
        .with_hint("move it away to reset kubeadm's default paths instead")
    })?;
    let mut plan = reset::plan(&root, ledger.as_ref()).map_err(|e| {
        CliError::new(ExitCode::Files, "the init ledger names something that is not boot's")
            .with_cause(e)
            .with_hint("nothing was changed; the ledger was edited or is corrupt: fix or remove that entry, or move the ledger away to reset kubeadm's default paths")
    })?;
    // The plugins and conf dir of BootConfiguration.network, when a configuration is given.
    if let Some(path) = &global.config {
        if let Some(boot) = super::load::parse_file(path)?.boot {
            plan.network.bin_dirs = boot.network.bin_dirs;
            plan.network.conf_dir = root.path(&boot.network.conf_dir);
        }
    }
    if args.keep_images {
        plan = plan.keep_images(&root);
    }
    if args.keep_snapshots {
        let directory = super::load::load_effective(global, &root, &Default::default())
            .map(|cfg| cfg.boot.etcd_snapshots.directory)
            .unwrap_or_else(|_| crate::etcd::snapshot::DEFAULT_DIR.into());
        plan = plan.keep_snapshots(root.path(directory));
    }
    if args.dry_run {
        println!("{plan}");
        println!("[dry-run] Would first remove this node's etcd member, unless it is the last one");
        println!("[dry-run] Nothing was changed.");
        return Ok(ExitCode::Ok);
    }
    if !args.force && !confirm()? {
        println!("[reset] Aborted; nothing was changed.");
        return Ok(ExitCode::Unhealthy);
    }
    // What ran, taken before stopping it, to check afterwards that it is gone.
    let (pods, _) = records::load_all(&plan.records_dir);
    let processes: Vec<(i32, u64, String)> = pods
        .iter()
        .flat_map(|p| {
            p.containers.iter().filter_map(move |c| {
                c.process
                    .as_ref()
                    .map(|h| (h.pid, h.start_ticks, format!("{}/{}", p.full_name, c.name)))
            })
        })
        .collect();
    let cgroups: Vec<_> = pods
        .iter()
        .flat_map(|p| p.containers.iter())
        .filter_map(|c| c.process.as_ref())
        .flat_map(|h| h.cgroups.clone())
        .collect();

    let attachments = network::cleanup::attachments(&plan.network);

    let runtime = super::async_runtime(0)?;
    runtime.block_on(remove_etcd_member(&plan, &root, args.force))?;
    let mut lines = Vec::new();
    let failures = runtime.block_on(reset::execute(&plan, &root, &mut lines));
    for line in &lines {
        println!("{line}");
    }
    let mut leftovers = reset::verify(&plan, &processes, &cgroups);
    leftovers.extend(
        network::cleanup::leftovers(&plan.network, &attachments)
            .into_iter()
            .chain(
                network::iptables::unused_hostport_chains()
                    .into_iter()
                    .map(|c| format!("iptables nat chain {c}")),
            )
            .map(reset::Leftover::Network),
    );
    if failures.is_empty() && leftovers.is_empty() {
        println!("[reset] Done: nothing boot created is left (files, processes, cgroups, ports, pod network checked).");
        println!("[reset] Not touched, as with kubeadm: CNI configuration, other iptables/IPVS rules, $HOME/.kube/config.");
        return Ok(ExitCode::Ok);
    }
    let mut text = String::new();
    for failure in &failures {
        text.push_str(&format!(
            "\n  failed to {}: {}",
            failure.step, failure.error
        ));
    }
    for leftover in &leftovers {
        text.push_str(&format!("\n  left: {leftover}"));
    }
    Err(CliError::new(
        ExitCode::Unhealthy,
        format!("reset did not finish cleanly:{text}"),
    )
    .with_hint("run `boot reset` again; it finishes what is left"))
}

/// kubeadm's remove-etcd-member phase, before anything stops. A node known to share its etcd
/// cluster stops here when its member cannot be removed (a dead member costs the others their
/// quorum) unless `--force`, which carries on with kubeadm's warning.
async fn remove_etcd_member(
    plan: &reset::ResetPlan,
    root: &crate::host::HostRoot,
    force: bool,
) -> Result<(), CliError> {
    let manifest = plan
        .files
        .iter()
        .find(|f| f.file_name().is_some_and(|n| n == "etcd.yaml"));
    match reset::remove_own_member(root, manifest.map(|p| p.as_path()), ETCD_CALL_TIMEOUT).await {
        Ok(None) => {}
        Ok(Some(removal)) => println!("[reset] etcd: {removal}"),
        Err(reset::MemberError::Etcd { error, joined }) if force || !joined => {
            println!("[reset] WARNING: {error}");
            if joined {
                println!("[reset] WARNING: please manually remove this etcd member using etcdctl");
            }
        }
        Err(err) => {
            return Err(CliError::new(ExitCode::Unhealthy, err.to_string()).with_hint(
                "nothing was changed; start this node's etcd (or reach its cluster) and run reset again, or `boot reset --force` to carry on and remove the member with `etcdctl member remove` later",
            ))
        }
    }
    Ok(())
}

/// Per etcd endpoint and call: a refused connection fails at once, a member busy electing a
/// leader answers within seconds.
const ETCD_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// kubeadm's prompt; anything but y/yes aborts.
fn confirm() -> Result<bool, CliError> {
    print!("[reset] WARNING: Changes made to this host by 'boot init' will be reverted.\n[reset] Are you sure you want to proceed? [y/N]: ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::new(ExitCode::Usage, "cannot read the answer").with_cause(e))?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}
