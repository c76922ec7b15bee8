//! Starting, restarting and stopping pods and containers: the agent's `SyncPod`. [`advance`]
//! starts whatever should run now (sandbox, then init containers one by one, then the app
//! containers, restarts whose back-off expired), the runtime calls on blocking threads
//! ([`on_sandbox`], and [`super::starting`] for containers); [`on_exit`] applies the restart
//! policy and CrashLoopBackOff; [`terminate_pod`] stops every container with the pod's grace
//! period.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::super::gc;
use super::super::pod::{ContainerState, PodWorker, Running, Termination};
use super::super::records::{self, ContainerRecord, PodRecord};
use super::super::source::StaticPod;
use super::starting::start_container;
use super::{adoption, running_instance, Context, Event};
use crate::runtime::logs::files::pod_log_dir;
use crate::runtime::names::PodUid;
use crate::runtime::{ContainerExit, PodRef, Sandbox};

/// A failed start (missing binary, bad probe) is not retried faster than this, even with a zero
/// back-off, so that a broken manifest cannot spin the agent.
pub(super) const MIN_START_RETRY: Duration = Duration::from_millis(200);
/// How long a pod whose sandbox could not be created waits before the next attempt.
const SANDBOX_RETRY: Duration = Duration::from_secs(2);

pub fn grace_period(pod: &StaticPod) -> Duration {
    super::super::pod::termination_grace_period(Some(pod.spec()))
}

pub fn pod_ref(pod: &StaticPod) -> PodRef<'_> {
    PodRef {
        uid: &pod.uid,
        namespace: &pod.namespace,
        full_name: &pod.full_name,
        spec: pod.spec(),
    }
}

/// Creates the worker for a newly wanted pod, adopting what a previous agent left running.
pub fn start_pod(
    ctx: &Context,
    pod: Arc<StaticPod>,
    record: Option<PodRecord>,
    now: Instant,
) -> PodWorker {
    let log_dir = pod_log_dir(
        &ctx.options.log_dir,
        &pod.namespace,
        &pod.full_name,
        &pod.uid,
    );
    let mut worker = PodWorker::new(pod, log_dir);
    ctx.note(format!(
        "pod {}: from {}",
        worker.pod.full_name,
        worker.pod.path.display()
    ));
    let ignored = ctx.runtime.ignored_fields(pod_ref(&worker.pod));
    if !ignored.is_empty() {
        ctx.note(format!(
            "pod {}: the runtime does not apply {}",
            worker.pod.full_name,
            ignored.join(", ")
        ));
    }
    if let Some(record) = record {
        adoption::adopt(ctx, &mut worker, &record, now);
    }
    advance(ctx, &mut worker, now);
    save_record(ctx, &worker);
    worker
}

/// Starts whatever should run now. Does nothing for a terminating pod.
pub fn advance(ctx: &Context, worker: &mut PodWorker, now: Instant) {
    if worker.terminating.is_some() {
        return;
    }
    if worker.sandbox.is_none() {
        let waiting = worker
            .sandbox_error
            .as_ref()
            .is_some_and(|(_, retry)| *retry > now);
        if !waiting && !worker.sandbox_pending {
            create_sandbox(ctx, worker);
        }
        return;
    }
    let mut changed = false;
    if let Some(index) = worker.next_init() {
        if due_to_start(&worker.init[index].state, now) {
            start_container(ctx, worker, true, index, now);
            changed = true;
        }
    } else {
        for index in 0..worker.app.len() {
            if due_to_start(&worker.app[index].state, now) {
                start_container(ctx, worker, false, index, now);
                changed = true;
            }
        }
    }
    if changed {
        save_record(ctx, worker);
    }
}

fn due_to_start(state: &ContainerState, now: Instant) -> bool {
    match state {
        ContainerState::Waiting { .. } => true,
        ContainerState::BackOff { until, .. } => *until <= now,
        ContainerState::Starting { .. } | ContainerState::Running(_) | ContainerState::Done(_) => {
            false
        }
    }
}

/// Creates the pod's sandbox on a blocking thread (it checks and creates host paths, which may
/// hang on a dead NFS server); [`on_sandbox`] takes the result.
fn create_sandbox(ctx: &Context, worker: &mut PodWorker) {
    worker.sandbox_pending = true;
    let runtime = ctx.runtime.clone();
    let events = ctx.events.clone();
    let pod = worker.pod.clone();
    tokio::task::spawn_blocking(move || {
        let result = runtime
            .create_sandbox(pod_ref(&pod))
            .map_err(|e| e.to_string());
        let _ = events.send(Event::SandboxCreated {
            uid: pod.uid.clone(),
            result,
        });
    });
}

/// The sandbox is there (or could not be made: retried after [`SANDBOX_RETRY`]).
pub fn on_sandbox(
    ctx: &Context,
    worker: &mut PodWorker,
    result: Result<Sandbox, String>,
    now: Instant,
) {
    worker.sandbox_pending = false;
    match result {
        Ok(sandbox) => {
            worker.sandbox = Some(sandbox);
            worker.sandbox_error = None;
        }
        Err(e) => {
            ctx.note(&e);
            worker.sandbox_error = Some((e, now + SANDBOX_RETRY));
        }
    }
    save_record(ctx, worker);
    advance(ctx, worker, now);
}

/// The earliest back-off expiry or sandbox retry of a pod.
pub fn next_deadline(worker: &PodWorker) -> Option<Instant> {
    if worker.terminating.is_some() {
        return None;
    }
    let sandbox = worker.sandbox_error.as_ref().map(|(_, at)| *at);
    let backoffs = worker.containers().filter_map(|c| match c.state {
        ContainerState::BackOff { until, .. } => Some(until),
        _ => None,
    });
    sandbox.into_iter().chain(backoffs).min()
}

/// Spawns the task that waits for a container instance to exit and reports it.
pub fn watch_exit(
    ctx: &Context,
    uid: &PodUid,
    init: bool,
    index: usize,
    instance: u64,
    exit: crate::runtime::BoxFuture<ContainerExit>,
) {
    let events = ctx.events.clone();
    let uid = uid.clone();
    tokio::spawn(async move {
        let exit = exit.await;
        let _ = events.send(Event::Exited {
            uid,
            init,
            index,
            instance,
            exit,
        });
    });
}

/// A container instance exited: record how, clean up, and apply the restart policy.
pub fn on_exit(
    ctx: &Context,
    worker: &mut PodWorker,
    init: bool,
    index: usize,
    instance: u64,
    exit: ContainerExit,
    now: Instant,
) {
    let pod_name = worker.pod.full_name.clone();
    let terminating = worker.terminating.is_some();
    let policy = worker.policy;
    let Some(container) = running_instance(worker, init, index, instance) else {
        return;
    };
    let ContainerState::Running(running) = std::mem::replace(
        &mut container.state,
        ContainerState::Waiting {
            reason: String::new(),
        },
    ) else {
        return;
    };
    tokio::spawn(ctx.runtime.cleanup_container(&running.handle));
    let reason = running.stopping.clone().unwrap_or_else(|| match exit {
        ContainerExit::Code(0) => "Completed".into(),
        ContainerExit::Unknown => "Unknown".into(),
        _ => "Error".into(),
    });
    let termination = Termination {
        exit,
        reason,
        started_at: running.handle.started_at,
        finished_at: SystemTime::now(),
        finished: now,
    };
    ctx.note(format!(
        "pod {pod_name}: container {} exited ({})",
        container.name,
        describe_exit(exit)
    ));
    container.last_termination = Some(termination.clone());
    let restart = !terminating
        && if init {
            !exit.succeeded() && policy.restarts(exit)
        } else {
            policy.restarts(exit)
        };
    container.state = if restart {
        let until = container.backoff.restart_at(now, &ctx.options.backoff);
        let wait = until.saturating_duration_since(now);
        let message = format!(
            "back-off {wait:?} restarting failed container={} pod={pod_name}",
            container.name
        );
        ContainerState::BackOff {
            until,
            reason: "CrashLoopBackOff".into(),
            message,
        }
    } else {
        ContainerState::Done(termination)
    };
    save_record(ctx, worker);
    advance(ctx, worker, now);
}

pub fn describe_exit(exit: ContainerExit) -> String {
    match exit {
        ContainerExit::Code(code) => format!("exit code {code}"),
        ContainerExit::Signal(signal) => format!("killed by signal {signal}"),
        ContainerExit::Unknown => "exit status unknown: adopted from an earlier agent".into(),
    }
}

/// Asks one running container to stop (SIGTERM, grace, SIGKILL); its exit arrives as an event.
pub fn stop_container(ctx: &Context, running: &mut Running, reason: &str, grace: Duration) {
    if running.stopping.is_some() {
        return;
    }
    running.stopping = Some(reason.to_string());
    running.probes.set_terminating();
    tokio::spawn(ctx.runtime.stop_container(&running.handle, grace));
}

/// Stops a whole pod: no more starts, every container stopped with the pod's grace period.
pub fn terminate_pod(ctx: &Context, worker: &mut PodWorker, reason: &str) {
    ctx.note(format!("pod {}: stopping: {reason}", worker.pod.full_name));
    worker.terminating = Some(super::super::pod::Terminating {
        reason: reason.to_string(),
    });
    let grace = grace_period(&worker.pod);
    for container in worker.containers_mut() {
        match &mut container.state {
            ContainerState::Running(running) => stop_container(ctx, running, reason, grace),
            // A start in flight is stopped when it reports (on_started).
            ContainerState::Starting { .. } => {}
            state @ (ContainerState::Waiting { .. } | ContainerState::BackOff { .. }) => {
                *state = ContainerState::Waiting {
                    reason: "Terminating".into(),
                };
            }
            ContainerState::Done(_) => {}
        }
    }
}

/// A stopped pod leaves: its sandbox and record are removed.
pub fn finish_pod(ctx: &Context, worker: PodWorker) {
    if let Some(sandbox) = &worker.sandbox {
        ctx.runtime.remove_sandbox(sandbox);
    }
    records::remove(&ctx.options.records_dir(), &worker.pod.uid);
    let log_dir = worker.log_dir.clone();
    gc::in_background(move || gc::remove_pod_logs(&log_dir));
    ctx.note(format!("pod {}: stopped", worker.pod.full_name));
}

/// Writes the pod's record for a future agent's adoption.
pub fn save_record(ctx: &Context, worker: &PodWorker) {
    let containers = worker
        .containers()
        .map(|c| ContainerRecord {
            name: c.name.clone(),
            init: c.init,
            restart_count: c.restart_count,
            process: c.running().map(|r| r.handle.clone()),
            completed: c.init && c.completed(),
        })
        .collect();
    let record = PodRecord {
        uid: worker.pod.uid.clone(),
        config_hash: worker.pod.config_hash.clone(),
        full_name: worker.pod.full_name.clone(),
        manifest: worker.pod.path.clone(),
        pod: Some(worker.pod.pod.clone()),
        sandbox: worker.sandbox.clone(),
        containers,
    };
    if let Err(e) = records::save(&ctx.options.records_dir(), &record) {
        ctx.note(format!(
            "pod {}: cannot record its processes for adoption: {e}",
            worker.pod.full_name
        ));
    }
}
