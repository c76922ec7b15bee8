//! Taking over from a previous agent (design §5 ★): a wanted pod's recorded containers whose
//! processes are still the same (pid and `/proc` start time match) are adopted and watched
//! through a pidfd, keeping their restart counts; recorded processes of pods no longer wanted are
//! stopped; a recorded pid now used by another process is never touched.

use std::time::{Instant, SystemTime};

use super::super::gc;
use super::super::pod::{ContainerState, PodWorker, Running, Termination};
use super::super::records::{self, PodRecord};
use super::lifecycle::watch_exit;
use super::{Context, Event, Supervisor};
use crate::probe::ProbeSet;
use crate::runtime::names::PodUid;
use crate::runtime::ContainerExit;

/// Adopts what `record` says still runs for `worker`'s pod.
pub fn adopt(ctx: &Context, worker: &mut PodWorker, record: &PodRecord, now: Instant) {
    // The sandbox is found again by create_sandbox (idempotent), which advance() runs on a
    // blocking thread right after adoption.
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
        // The sandbox is found again only after adoption: until then the recorded one says where
        // the pod's probes go (its pod IP on the pod network).
        let probe_host = match worker_sandbox.as_ref().or(record.sandbox.as_ref()) {
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
        let orphan_uids: Vec<PodUid> = self
            .records
            .values()
            .filter(|r| !wanted.pods.iter().any(|p| r.belongs_to(p)))
            .map(|r| r.uid.clone())
            .collect();
        let leftovers: Vec<PodRecord> = orphan_uids
            .iter()
            .filter_map(|uid| self.records.remove(uid))
            .collect();
        for record in leftovers {
            let grace = crate::agent::pod::termination_grace_period(
                record.pod.as_ref().and_then(|p| p.spec.as_ref()),
            );
            let mut stops = Vec::new();
            for container in &record.containers {
                let Some(handle) = &container.process else {
                    continue;
                };
                let Some(exit) = self.ctx.runtime.adopt_container(handle) else {
                    continue;
                };
                self.ctx.note(format!(
                    "pod {}: its manifest is gone; stopping leftover pid {}",
                    record.full_name, handle.pid
                ));
                let runtime = self.ctx.runtime.clone();
                let handle = handle.clone();
                stops.push(async move {
                    runtime.stop_container(&handle, grace).await;
                    exit.await;
                    runtime.cleanup_container(&handle).await;
                });
            }
            let stopping = stops.len();
            if stopping > 0 {
                *self.orphans.entry(record.full_name.clone()).or_default() += stopping;
            }
            if let Some(sandbox) = &record.sandbox {
                self.ctx.runtime.remove_sandbox(sandbox);
            }
            // Its logs go once its processes are gone (they write them until then).
            let log_dirs =
                gc::pod_log_dirs(&self.ctx.options.log_dir, &record.full_name, &record.uid);
            let events = self.ctx.events.clone();
            let full_name = record.full_name.clone();
            tokio::spawn(async move {
                for stop in stops {
                    stop.await;
                }
                gc::in_background(move || log_dirs.iter().for_each(|d| gc::remove_pod_logs(d)));
                for _ in 0..stopping {
                    let _ = events.send(Event::OrphanStopped {
                        full_name: full_name.clone(),
                    });
                }
            });
            records::remove(&self.ctx.options.records_dir(), &record.uid);
        }
    }
}
