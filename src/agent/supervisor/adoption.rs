//! Taking over from a previous agent (design §5 ★): a wanted pod's recorded containers whose
//! processes are still the same (pid and `/proc` start time match) are adopted and watched
//! through a pidfd, keeping their restart counts; recorded processes of pods no longer wanted are
//! stopped; a recorded pid now used by another process is never touched.

use std::time::{Duration, Instant, SystemTime};

use super::super::pod::{ContainerState, PodWorker, Running, Termination};
use super::super::records::{self, PodRecord};
use super::lifecycle::{pod_ref, watch_exit};
use super::{Context, Event, Supervisor};
use crate::probe::ProbeSet;
use crate::runtime::ContainerExit;

/// The grace period for leftovers of a pod whose manifest is gone (the kubelet's default).
const ORPHAN_GRACE: Duration = Duration::from_secs(30);

/// Adopts what `record` says still runs for `worker`'s pod.
pub fn adopt(ctx: &Context, worker: &mut PodWorker, record: &PodRecord, now: Instant) {
    // The sandbox is found again by create_sandbox (idempotent); a failure is retried later.
    if record.sandbox.is_some() {
        worker.sandbox = ctx.runtime.create_sandbox(pod_ref(&worker.pod)).ok();
    }
    let pod = worker.pod.clone();
    let uid = pod.uid.clone();
    let worker_sandbox = worker.sandbox.clone();
    for container in worker.containers_mut() {
        let Some(recorded) = record.container(&container.name) else {
            continue;
        };
        container.restart_count = recorded.restart_count;
        container.ever_started =
            recorded.process.is_some() || recorded.restart_count > 0 || recorded.completed;
        if recorded.completed {
            let at = SystemTime::now();
            container.state = ContainerState::Done(Termination {
                exit: ContainerExit::Code(0),
                reason: "Completed".into(),
                started_at: at,
                finished_at: at,
                finished: now,
            });
            continue;
        }
        let Some(handle) = &recorded.process else {
            continue;
        };
        let Some(exit) = ctx.runtime.adopt_container(handle) else {
            ctx.note(format!(
                "pod {}: container {}: recorded pid {} is gone or is another process now; starting it again",
                pod.full_name, container.name, handle.pid
            ));
            continue;
        };
        let spec = if container.init {
            &pod.init_containers()[container.index]
        } else {
            &pod.containers()[container.index]
        };
        let age = SystemTime::now()
            .duration_since(handle.started_at)
            .unwrap_or_default();
        let since = now.checked_sub(age).unwrap_or(now);
        let probe_host = match &worker_sandbox {
            Some(sandbox) => sandbox.probe_host(&ctx.options.node_address),
            None => ctx.options.node_address.clone(),
        };
        let probes = ProbeSet::for_container(spec, &probe_host, since)
            .unwrap_or_else(|_| ProbeSet::new(since, None, None, None));
        container.instance += 1;
        watch_exit(
            ctx,
            &uid,
            container.init,
            container.index,
            container.instance,
            exit,
        );
        ctx.note(format!(
            "pod {}: container {} adopted (pid {})",
            pod.full_name, container.name, handle.pid
        ));
        container.state = ContainerState::Running(Box::new(Running {
            handle: handle.clone(),
            since,
            probes,
            adopted: true,
            stopping: None,
            probes_in_flight: Vec::new(),
        }));
    }
}

impl Supervisor {
    /// Stops the still-live recorded processes of pods no manifest wants any more, and forgets
    /// their records. Wanted pods of the same name wait until these are gone.
    pub(super) fn stop_orphans(&mut self) {
        let wanted = self.manifests.desired(|_| false);
        let orphan_uids: Vec<String> = self
            .records
            .keys()
            .filter(|uid| !wanted.pods.iter().any(|p| &&p.uid == uid))
            .cloned()
            .collect();
        let leftovers: Vec<PodRecord> = orphan_uids
            .iter()
            .filter_map(|uid| self.records.remove(uid))
            .collect();
        for record in leftovers {
            let mut stopping = 0;
            for container in &record.containers {
                let Some(handle) = &container.process else {
                    continue;
                };
                let Some(exit) = self.ctx.runtime.adopt_container(handle) else {
                    continue;
                };
                stopping += 1;
                let runtime = self.ctx.runtime.clone();
                let events = self.ctx.events.clone();
                let handle = handle.clone();
                let full_name = record.full_name.clone();
                self.ctx.note(format!(
                    "pod {full_name}: its manifest is gone; stopping leftover pid {}",
                    handle.pid
                ));
                tokio::spawn(async move {
                    runtime.stop_container(&handle, ORPHAN_GRACE).await;
                    exit.await;
                    runtime.cleanup_container(&handle).await;
                    let _ = events.send(Event::OrphanStopped { full_name });
                });
            }
            if stopping > 0 {
                *self.orphans.entry(record.full_name.clone()).or_default() += stopping;
            }
            if let Some(sandbox) = &record.sandbox {
                self.ctx.runtime.remove_sandbox(sandbox);
            }
            records::remove(&self.ctx.options.records_dir(), &record.uid);
        }
    }
}
