//! Starting, restarting and stopping pods and containers: the agent's `SyncPod`. [`advance`]
//! starts whatever should run now (sandbox, then init containers one by one, then the app
//! containers, restarts whose back-off expired); [`on_exit`] applies the restart policy and
//! CrashLoopBackOff; [`terminate_pod`] stops every container with the pod's grace period.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::super::gc;
use super::super::pod::{ContainerState, PodWorker, Running, Termination};
use super::super::records::{self, ContainerRecord, PodRecord};
use super::super::source::StaticPod;
use super::{adoption, running_instance, Context, Event};
use crate::probe::ProbeSet;
use crate::runtime::logs::files::{container_log_path, pod_log_dir};
use crate::runtime::names::PodUid;
use crate::runtime::{ContainerExit, ContainerRequest, PodRef};

/// A failed start (missing binary, bad probe) is not retried faster than this, even with a zero
/// back-off, so that a broken manifest cannot spin the agent.
const MIN_START_RETRY: Duration = Duration::from_millis(200);
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
        if worker
            .sandbox_error
            .as_ref()
            .is_some_and(|(_, retry)| *retry > now)
        {
            return;
        }
        match ctx.runtime.create_sandbox(pod_ref(&worker.pod)) {
            Ok(sandbox) => {
                worker.sandbox = Some(sandbox);
                worker.sandbox_error = None;
            }
            Err(e) => {
                ctx.note(e.to_string());
                worker.sandbox_error = Some((e.to_string(), now + SANDBOX_RETRY));
                return;
            }
        }
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
        ContainerState::Running(_) | ContainerState::Done(_) => false,
    }
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

fn start_container(ctx: &Context, worker: &mut PodWorker, init: bool, index: usize, now: Instant) {
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
    let probe_host = sandbox.probe_host(&ctx.options.node_address);
    let probes = ProbeSet::for_container(spec, &probe_host, now);
    let log_path = container_log_path(&log_dir, &spec.name, container.restart_count);
    let request = ContainerRequest {
        pod: pod_ref(&pod),
        sandbox: &sandbox,
        container: spec,
        restart_count: container.restart_count,
        log_path,
    };
    let started = probes.map_err(|e| e.to_string()).and_then(|probes| {
        let (handle, exit) = ctx
            .runtime
            .start_container(&request)
            .map_err(|e| e.to_string())?;
        Ok((probes, handle, exit))
    });
    match started {
        Ok((probes, handle, exit)) => {
            container.instance += 1;
            container.ever_started = true;
            ctx.note(format!(
                "pod {}: container {} started (pid {}, restart {})",
                pod.full_name, spec.name, handle.pid, container.restart_count
            ));
            watch_exit(ctx, &pod.uid, init, index, container.instance, exit);
            if container.restart_count >= 2 {
                let container_dir = log_dir.join(spec.name.as_str());
                let count = container.restart_count;
                gc::in_background(move || gc::remove_old_logs(&container_dir, count));
            }
            container.state = ContainerState::Running(Box::new(Running {
                handle,
                since: now,
                probes,
                adopted: false,
                stopping: None,
                probes_in_flight: Vec::new(),
            }));
        }
        Err(message) => {
            ctx.note(&message);
            // A failed start counts like a crash for the back-off.
            let finished = now;
            container.last_termination = Some(Termination {
                exit: ContainerExit::Unknown,
                reason: "CreateContainerError".into(),
                started_at: SystemTime::now(),
                finished_at: SystemTime::now(),
                finished,
            });
            if container.ever_started {
                container.restart_count -= 1; // it did not start: no restart happened
            }
            let until = container
                .backoff
                .restart_at(finished, &ctx.options.backoff)
                .max(now + MIN_START_RETRY);
            container.state = ContainerState::BackOff {
                until,
                reason: "CreateContainerError".into(),
                message,
            };
        }
    }
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
