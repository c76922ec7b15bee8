//! When which probe runs (the kubelet's per-probe workers, centralised): the container's
//! [`ProbeSet`](crate::probe::ProbeSet) says what is due; each due probe runs in a task of its own
//! and reports back: exec probes inside the container through the runtime's `exec_sync`, network
//! probes through [`crate::probe::run`]. A result may restart the container (liveness, startup
//! exhaustion) or flip its readiness.

use std::time::Instant;

use super::super::pod::PodWorker;
use super::lifecycle::{grace_period, pod_ref, stop_container};
use super::{running_instance, Context, Event};
use crate::probe::{self, ProbeAction, ProbeKind, ProbeResult, Verdict};
use crate::runtime::ExecTarget;

/// Starts the probes that are due. Init containers are not probed (as the kubelet).
pub fn run_due(ctx: &Context, worker: &mut PodWorker, now: Instant) {
    let uid = worker.pod.uid.clone();
    let pod = worker.pod.clone();
    let sandbox = worker.sandbox.clone();
    for container in &mut worker.app {
        let instance = container.instance;
        let index = container.index;
        let Some(running) = container.running_mut() else {
            continue;
        };
        if running.stopping.is_some() {
            continue;
        }
        for due in running.probes.take_due(now) {
            if running.probes_in_flight.contains(&due.kind) {
                continue; // still running (timeout longer than period): skip this round
            }
            running.probes_in_flight.push(due.kind);
            let user_agent = probe::http::user_agent(&ctx.options.kubernetes_version);
            let probe: crate::runtime::BoxFuture<ProbeResult> = match (&due.action, &sandbox) {
                (ProbeAction::Exec { command }, Some(sandbox)) => {
                    let target = ExecTarget {
                        pod: pod_ref(&pod),
                        sandbox,
                        container: &pod.containers()[index],
                        handle: &running.handle,
                    };
                    let exec = ctx.runtime.exec_sync(target, command, due.timeout);
                    let command = command.clone();
                    Box::pin(async move { probe::exec::result(&command, &exec.await) })
                }
                (ProbeAction::Exec { .. }, None) => {
                    Box::pin(async { ProbeResult::Failure("exec: the pod has no sandbox".into()) })
                }
                (action, _) => {
                    let action = action.clone();
                    let timeout = due.timeout;
                    Box::pin(async move { probe::run(&action, timeout, &[], &user_agent).await })
                }
            };
            let events = ctx.events.clone();
            let uid = uid.clone();
            tokio::spawn(async move {
                let result = probe.await;
                let _ = events.send(Event::Probed {
                    uid,
                    index,
                    instance,
                    kind: due.kind,
                    result,
                });
            });
        }
    }
}

/// The earliest instant a probe of the pod is due.
pub fn next_due(worker: &PodWorker) -> Option<Instant> {
    worker
        .app
        .iter()
        .filter_map(|c| c.running())
        .filter(|r| r.stopping.is_none())
        .filter_map(|r| r.probes.next_due())
        .min()
}

/// A probe result arrived: feed it to the container's probe set and act on the verdicts.
pub fn on_result(
    ctx: &Context,
    worker: &mut PodWorker,
    index: usize,
    instance: u64,
    kind: ProbeKind,
    result: ProbeResult,
) {
    let pod_name = worker.pod.full_name.clone();
    let grace = grace_period(&worker.pod);
    let Some(container) = running_instance(worker, false, index, instance) else {
        return;
    };
    let name = container.name.clone();
    let Some(running) = container.running_mut() else {
        return;
    };
    running.probes_in_flight.retain(|k| *k != kind);
    if let ProbeResult::Warning(warning) = &result {
        // The kubelet's ProbeWarning event.
        ctx.note(format!(
            "pod {pod_name}: container {name}: {} probe warning: {warning}",
            kind.title()
        ));
    }
    for verdict in running.probes.record(kind, &result) {
        match verdict {
            Verdict::Started => ctx.note(format!(
                "pod {pod_name}: container {name} started (startup probe passed)"
            )),
            Verdict::Ready => ctx.note(format!("pod {pod_name}: container {name} is ready")),
            Verdict::NotReady { reason } => ctx.note(format!(
                "pod {pod_name}: container {name} is not ready: {reason}"
            )),
            Verdict::Restart {
                reason,
                grace_period,
            } => {
                ctx.note(format!(
                    "pod {pod_name}: container {name}: {reason}; restarting it"
                ));
                stop_container(ctx, running, &reason, grace_period.unwrap_or(grace));
            }
        }
    }
}
