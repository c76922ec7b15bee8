//! Starting a container: the runtime's start (host path checks, fork, mounts) runs on a blocking
//! thread and reports back as [`Event::Started`]; [`on_started`] makes the container running (and
//! watched), or backs it off after a failed start, or stops a start nobody waits for any more.

use std::time::{Instant, SystemTime};

use super::super::gc;
use super::super::pod::{ContainerState, ContainerWorker, PodWorker, Running, Termination};
use super::lifecycle::{
    advance, grace_period, pod_ref, save_record, stop_container, watch_exit, MIN_START_RETRY,
};
use super::{Context, Event};
use crate::probe::ProbeSet;
use crate::runtime::logs::files::container_log_path;
use crate::runtime::{ContainerExit, ContainerHandle, ContainerRequest};

pub fn start_container(
    ctx: &Context,
    worker: &mut PodWorker,
    init: bool,
    index: usize,
    now: Instant,
) {
    let pod = worker.pod.clone();
    let Some(sandbox) = worker.sandbox.clone() else {
        return;
    };
    let log_dir = worker.log_dir.clone();
    let spec = if init {
        &pod.init_containers()[index]
    } else {
        &pod.containers()[index]
    };
    let Some(container) = worker.container_mut(init, index) else {
        return;
    };
    // An image runtime's container waits for its image (pulled in the background).
    if let Some(waiting) = ctx
        .images
        .as_ref()
        .and_then(|g| g.check(&pod.uid, spec, now))
    {
        container.state = ContainerState::BackOff {
            until: waiting.until,
            reason: waiting.reason.into(),
            message: waiting.message,
        };
        return;
    }
    if container.ever_started {
        container.restart_count += 1;
    }
    if let Some(finished) = container.last_termination.as_ref().map(|t| t.finished) {
        container
            .backoff
            .record_restart(finished, now, &ctx.options.backoff);
    }
    // Probes of a pod on the pod network go to its IP, as the kubelet's do.
    let probe_host = sandbox.probe_host(&ctx.options.node_address);
    let probes = match ProbeSet::for_container(spec, &probe_host, now) {
        Ok(probes) => probes,
        Err(e) => return start_failed(ctx, container, e.to_string(), now),
    };
    container.instance += 1;
    container.state = ContainerState::Starting {
        probes: Box::new(probes),
        since: now,
    };
    // The runtime's start checks host paths and forks: on a blocking thread, so that a hung
    // hostPath (NFS) cannot hold the supervisor, its probes or /healthz.
    let runtime = ctx.runtime.clone();
    let events = ctx.events.clone();
    let (instance, restart_count) = (container.instance, container.restart_count);
    tokio::task::spawn_blocking(move || {
        let spec = if init {
            &pod.init_containers()[index]
        } else {
            &pod.containers()[index]
        };
        let request = ContainerRequest {
            pod: pod_ref(&pod),
            sandbox: &sandbox,
            container: spec,
            restart_count,
            log_path: container_log_path(&log_dir, &spec.name, restart_count),
        };
        let result = runtime.start_container(&request).map_err(|e| e.to_string());
        let _ = events.send(Event::Started {
            uid: pod.uid.clone(),
            init,
            index,
            instance,
            result: StartResult(result),
        });
    });
}

/// What a container start on a blocking thread reports.
pub struct StartResult(
    pub Result<(ContainerHandle, crate::runtime::BoxFuture<ContainerExit>), String>,
);

impl std::fmt::Debug for StartResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Ok((handle, _)) => write!(f, "Ok(pid {})", handle.pid),
            Err(e) => write!(f, "Err({e})"),
        }
    }
}

/// A container start finished: it runs now (and is watched), or it failed and backs off. A
/// start nobody waits for any more (the pod is stopping, a newer instance began) is stopped.
pub fn on_started(
    ctx: &Context,
    worker: &mut PodWorker,
    init: bool,
    index: usize,
    instance: u64,
    result: StartResult,
    now: Instant,
) {
    let pod = worker.pod.clone();
    let grace = grace_period(&pod);
    let log_dir = worker.log_dir.clone();
    let terminating = worker.terminating.as_ref().map(|t| t.reason.clone());
    let Some(container) = worker
        .container_mut(init, index)
        .filter(|c| c.instance == instance && matches!(c.state, ContainerState::Starting { .. }))
    else {
        if let Ok((handle, _)) = result.0 {
            let (stop, cleanup) = (
                ctx.runtime.stop_container(&handle, grace),
                ctx.runtime.cleanup_container(&handle),
            );
            tokio::spawn(async move {
                stop.await;
                cleanup.await;
            });
        }
        return;
    };
    let ContainerState::Starting { probes, since } = std::mem::replace(
        &mut container.state,
        ContainerState::Waiting {
            reason: "ContainerCreating".into(),
        },
    ) else {
        return;
    };
    match result.0 {
        Ok((handle, exit)) => {
            container.ever_started = true;
            ctx.note(format!(
                "pod {}: container {} started (pid {}, restart {})",
                pod.full_name, container.name, handle.pid, container.restart_count
            ));
            watch_exit(ctx, &pod.uid, init, index, instance, exit);
            if container.restart_count >= 2 {
                let container_dir = log_dir.join(container.name.as_str());
                let count = container.restart_count;
                gc::in_background(move || gc::remove_old_logs(&container_dir, count));
            }
            let mut running = Running {
                handle,
                since,
                probes: *probes,
                adopted: false,
                stopping: None,
                probes_in_flight: Vec::new(),
            };
            if let Some(reason) = terminating {
                stop_container(ctx, &mut running, &reason, grace);
            }
            container.state = ContainerState::Running(Box::new(running));
        }
        Err(message) => start_failed(ctx, container, message, now),
    }
    save_record(ctx, worker);
    advance(ctx, worker, now);
}

/// A failed start counts like a crash for the back-off.
fn start_failed(ctx: &Context, container: &mut ContainerWorker, message: String, now: Instant) {
    ctx.note(&message);
    container.last_termination = Some(Termination {
        exit: ContainerExit::Unknown,
        reason: "CreateContainerError".into(),
        started_at: SystemTime::now(),
        finished_at: SystemTime::now(),
        finished: now,
    });
    if container.ever_started {
        container.restart_count -= 1; // it did not start: no restart happened
    }
    let until = container
        .backoff
        .restart_at(now, &ctx.options.backoff)
        .max(now + MIN_START_RETRY);
    container.state = ContainerState::BackOff {
        until,
        reason: "CreateContainerError".into(),
        message,
    };
}
