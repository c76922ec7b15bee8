//! The supervisor: one `select!` loop over manifest-directory events, relist ticks, container
//! exits, probe results, status requests, timers (back-off restarts, due probes) and shutdown;
//! each handled by a small named function in [`lifecycle`], [`probing`], [`adoption`] and
//! [`snapshot`]. All pod state lives here and is only touched from this loop; spawned tasks
//! (exit watchers, probes, stops) report back through [`Event`]s.

mod adoption;
mod lifecycle;
mod probing;
mod snapshot;
mod starting;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::options::AgentOptions;
use super::pod::{ContainerState, PodWorker};
use super::records::PodRecord;
use super::source::{dir, Desired, ManifestSet};
use super::status::AgentStatus;
use crate::probe::{ProbeKind, ProbeResult};
use crate::runtime::names::{PodName, PodUid};
use crate::runtime::{ContainerExit, Runtime};

/// What spawned tasks and the status server tell the supervisor.
#[derive(Debug)]
pub enum Event {
    Exited {
        uid: PodUid,
        init: bool,
        index: usize,
        instance: u64,
        exit: ContainerExit,
    },
    Probed {
        uid: PodUid,
        index: usize,
        instance: u64,
        kind: ProbeKind,
        result: ProbeResult,
    },
    /// A sandbox creation on a blocking thread finished.
    SandboxCreated {
        uid: PodUid,
        result: Result<crate::runtime::Sandbox, String>,
    },
    /// A container start on a blocking thread finished.
    Started {
        uid: PodUid,
        init: bool,
        index: usize,
        instance: u64,
        result: starting::StartResult,
    },
    /// A leftover process of a pod that is no longer wanted has been stopped.
    OrphanStopped {
        full_name: PodName,
    },
    Status(oneshot::Sender<AgentStatus>),
}

/// What every handler needs besides the pods.
pub struct Context {
    pub options: AgentOptions,
    pub runtime: Arc<dyn Runtime>,
    pub events: mpsc::UnboundedSender<Event>,
    pub started_at: SystemTime,
    /// Where the status goes for the node side (`None`: the agent runs without the API).
    pub publisher: Option<super::published::Publisher>,
    /// Pulls images before containers start, when the runtime runs images.
    pub images: Option<Arc<crate::agent::images::ImageGate>>,
}

impl Context {
    /// One line of the agent's event log on stdout, in kubeadm's `[phase] message` style.
    pub fn note(&self, message: impl AsRef<str>) {
        if self.options.print_events {
            println!("[agent] {}", message.as_ref());
        }
    }
}

pub struct Supervisor {
    ctx: Context,
    manifests: ManifestSet,
    desired: Desired,
    pods: BTreeMap<PodUid, PodWorker>,
    /// Records of a previous agent not yet matched with a pod (consumed by adoption).
    records: BTreeMap<PodUid, PodRecord>,
    /// Full names of pods whose leftover processes are still being stopped.
    orphans: BTreeMap<PodName, usize>,
    warnings: Vec<String>,
    /// The manifest directory's ownership or mode warning, checked on every relist.
    directory_warning: Option<String>,
    watching: Option<notify::RecommendedWatcher>,
    /// The agent is stopping: nothing new starts.
    shutting_down: bool,
}

/// How long a stopping agent that leaves its pods running waits for starts in flight.
const START_DRAIN: Duration = Duration::from_secs(10);

impl Supervisor {
    pub fn new(ctx: Context) -> Supervisor {
        let (records, warnings) = super::records::load_all(&ctx.options.records_dir());
        let mut manifests = ManifestSet::default();
        for record in &records {
            if let Some(pod) = record.static_pod(&ctx.options.node_name) {
                manifests.remember(Arc::new(pod));
            }
        }
        let records = records.into_iter().map(|r| (r.uid.clone(), r)).collect();
        Supervisor {
            ctx,
            manifests,
            desired: Desired::default(),
            pods: BTreeMap::new(),
            records,
            orphans: BTreeMap::new(),
            warnings,
            directory_warning: None,
            watching: None,
            shutting_down: false,
        }
    }

    /// Runs until `shutdown` resolves; then leaves the pods running, or with `stop_pods_on_exit`
    /// stops them all first.
    pub async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        shutdown: impl Future<Output = ()>,
    ) {
        let (watch_tx, mut watch_rx) = mpsc::unbounded_channel();
        self.start_watch(&watch_tx);
        self.check_directory();
        let options = &self.ctx.options;
        if let Err(e) = dir::relist(
            &mut self.manifests,
            &options.manifest_dir,
            &options.node_name,
        ) {
            self.ctx.note(format!(
                "cannot read {}: {e}",
                options.manifest_dir.display()
            ));
        }
        self.manifests.forget_remembered();
        self.stop_orphans();
        self.reconcile();
        let mut relist = tokio::time::interval(self.ctx.options.relist_period);
        relist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        let mut shutting_down = false;
        // Leaving the pods running, the agent still waits (this long at most) for the starts in
        // flight: each reports its process once, and only then is it recorded for the next agent
        // or `boot reset` to find. Leaving before would orphan it unrecorded.
        let mut drain_until: Option<Instant> = None;
        loop {
            let deadline = self
                .next_deadline()
                .into_iter()
                .chain(drain_until)
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = &mut shutdown, if !shutting_down => {
                    shutting_down = true;
                    if !self.ctx.options.stop_pods_on_exit {
                        drain_until = Some(Instant::now() + START_DRAIN);
                    }
                    if !self.on_shutdown() {
                        return;
                    }
                }
                Some(()) = watch_rx.recv() => {
                    while watch_rx.try_recv().is_ok() {}
                    if !shutting_down {
                        self.on_relist();
                    }
                }
                _ = relist.tick() => {
                    if !shutting_down {
                        self.start_watch(&watch_tx);
                        self.on_relist();
                    }
                }
                Some(event) = events.recv() => self.on_event(event),
                _ = tokio::time::sleep_until(deadline.into()) => self.on_timer(),
            }
            self.publish();
            let drained = !self.ctx.options.stop_pods_on_exit
                && (!self.any_starting() || drain_until.is_some_and(|d| Instant::now() >= d));
            if shutting_down && (self.pods.is_empty() || drained) {
                return;
            }
        }
    }

    fn start_watch(&mut self, tx: &mpsc::UnboundedSender<()>) {
        if self.watching.is_none() && self.ctx.options.manifest_dir.is_dir() {
            self.watching = dir::watch(&self.ctx.options.manifest_dir, tx.clone()).ok();
        }
    }

    /// Warns (once per change, in the log and always in status) about a manifest directory
    /// others than root can write.
    fn check_directory(&mut self) {
        let warning = dir::directory_warning(&self.ctx.options.manifest_dir);
        if warning != self.directory_warning {
            if let Some(w) = &warning {
                self.ctx.note(w);
            }
            self.directory_warning = warning;
        }
    }

    /// Re-reads the manifest directory and reconciles the pods with it.
    fn on_relist(&mut self) {
        self.check_directory();
        let options = &self.ctx.options;
        match dir::relist(
            &mut self.manifests,
            &options.manifest_dir,
            &options.node_name,
        ) {
            Ok(false) => {}
            Ok(true) => self.reconcile(),
            Err(e) => self.ctx.note(format!(
                "cannot read {}: {e}",
                options.manifest_dir.display()
            )),
        }
    }

    /// Stops pods no longer wanted and starts wanted ones (a replacement only once the pod of
    /// the same name is fully stopped, as the kubelet's `allowStaticPodStart`).
    fn reconcile(&mut self) {
        let pods = &self.pods;
        let desired = self.manifests.desired(|pod| {
            pods.get(&pod.uid)
                .is_some_and(|w| w.pod.config_hash == pod.config_hash)
        });
        // A pod is the same pod only with the same UID and the same content.
        let wanted: BTreeSet<(&str, &str)> = desired
            .pods
            .iter()
            .map(|p| (p.uid.as_str(), p.config_hash.as_str()))
            .collect();
        let now = Instant::now();
        for worker in self.pods.values_mut() {
            let key = (worker.pod.uid.as_str(), worker.pod.config_hash.as_str());
            if !wanted.contains(&key) && worker.terminating.is_none() {
                lifecycle::terminate_pod(&self.ctx, worker, "its manifest was removed or changed");
            }
        }
        for pod in &desired.pods {
            if self.shutting_down || self.pods.contains_key(&pod.uid) {
                continue;
            }
            let name_busy = self.pods.values().any(|w| w.pod.full_name == pod.full_name)
                || self.orphans.contains_key(&pod.full_name);
            if name_busy {
                continue;
            }
            // A record of the same UID but other content belongs to the old pod: stop_orphans stops it.
            let record = self.records.remove(&pod.uid).filter(|r| r.belongs_to(pod));
            let worker = lifecycle::start_pod(&self.ctx, pod.clone(), record, now);
            self.pods.insert(pod.uid.clone(), worker);
        }
        for problem in &desired.problems {
            let known = self
                .desired
                .problems
                .iter()
                .any(|p| p.error == problem.error);
            if !known {
                self.ctx.note(&problem.error);
            }
        }
        self.desired = desired;
        self.finish_stopped_pods();
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Exited {
                uid,
                init,
                index,
                instance,
                exit,
            } => {
                if let Some(worker) = self.pods.get_mut(&uid) {
                    lifecycle::on_exit(
                        &self.ctx,
                        worker,
                        init,
                        index,
                        instance,
                        exit,
                        Instant::now(),
                    );
                }
                self.finish_stopped_pods();
            }
            Event::SandboxCreated { uid, result } => {
                match self.pods.get_mut(&uid) {
                    Some(worker) if worker.sandbox_pending => {
                        lifecycle::on_sandbox(&self.ctx, worker, result, Instant::now());
                    }
                    _ => {
                        if let Ok(sandbox) = result {
                            self.ctx.runtime.remove_sandbox(&sandbox);
                        }
                    }
                }
                self.finish_stopped_pods();
            }
            Event::Started {
                uid,
                init,
                index,
                instance,
                result,
            } => {
                if let Some(worker) = self.pods.get_mut(&uid) {
                    starting::on_started(
                        &self.ctx,
                        worker,
                        init,
                        index,
                        instance,
                        result,
                        Instant::now(),
                    );
                }
                self.finish_stopped_pods();
            }
            Event::Probed {
                uid,
                index,
                instance,
                kind,
                result,
            } => {
                if let Some(worker) = self.pods.get_mut(&uid) {
                    probing::on_result(&self.ctx, worker, index, instance, kind, result);
                }
            }
            Event::OrphanStopped { full_name } => {
                if let Some(count) = self.orphans.get_mut(&full_name) {
                    *count -= 1;
                    if *count == 0 {
                        self.orphans.remove(&full_name);
                        self.reconcile();
                    }
                }
            }
            Event::Status(reply) => {
                let mut status = self.snapshot();
                status.api = self.ctx.publisher.as_ref().map(|p| p.api_sync());
                let _ = reply.send(status);
            }
        }
    }

    /// Hands the node side the current state (a no-op when nothing changed).
    fn publish(&self) {
        if let Some(publisher) = &self.ctx.publisher {
            publisher.publish(self.snapshot(), || {
                self.pods.values().map(|w| w.pod.clone()).collect()
            });
        }
    }

    /// Back-offs that expired, sandboxes to retry, probes that are due.
    fn on_timer(&mut self) {
        let now = Instant::now();
        for worker in self.pods.values_mut() {
            lifecycle::advance(&self.ctx, worker, now);
            probing::run_due(&self.ctx, worker, now);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.pods
            .values()
            .filter_map(|w| {
                lifecycle::next_deadline(w)
                    .into_iter()
                    .chain(probing::next_due(w))
                    .min()
            })
            .min()
    }

    /// Removes terminating pods whose processes are all gone, then starts what waited for them.
    fn finish_stopped_pods(&mut self) {
        let done: Vec<PodUid> = self
            .pods
            .values()
            .filter(|w| w.terminating.is_some() && w.all_stopped())
            .map(|w| w.pod.uid.clone())
            .collect();
        if done.is_empty() {
            return;
        }
        for uid in done {
            if let Some(worker) = self.pods.remove(&uid) {
                lifecycle::finish_pod(&self.ctx, worker);
            }
        }
        self.reconcile();
    }

    /// Whether a container start is in flight (its process not yet reported and recorded).
    fn any_starting(&self) -> bool {
        self.pods.values().any(|worker| {
            worker
                .containers()
                .any(|c| matches!(c.state, ContainerState::Starting { .. }))
        })
    }

    /// Returns whether the loop must go on (to wait for pods to stop, or for starts in flight).
    fn on_shutdown(&mut self) -> bool {
        self.shutting_down = true;
        if !self.ctx.options.stop_pods_on_exit {
            self.ctx
                .note("stopping; the pods keep running and the next agent adopts them");
            return self.any_starting();
        }
        self.ctx.note("stopping every pod (--stop-pods-on-exit)");
        for worker in self.pods.values_mut() {
            if worker.terminating.is_none() {
                lifecycle::terminate_pod(&self.ctx, worker, "the agent is stopping");
            }
        }
        self.finish_stopped_pods();
        !self.pods.is_empty()
    }
}

/// The container of `worker` at (`init`, `index`) if it runs the given instance.
fn running_instance(
    worker: &mut PodWorker,
    init: bool,
    index: usize,
    instance: u64,
) -> Option<&mut super::pod::ContainerWorker> {
    let container = worker.container_mut(init, index)?;
    (container.instance == instance && matches!(container.state, ContainerState::Running(_)))
        .then_some(container)
}
