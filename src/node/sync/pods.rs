//! The pods bound to the node: listed and watched (`spec.nodeName=<node>`), and reconciled with
//! the static pods: a current mirror pod per static pod with its status, orphaned mirrors deleted,
//! any other pod rejected (reference §14, §20).

use std::collections::BTreeSet;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, WatchEvent,
    WatchParams,
};
use kube::Client;
use serde_json::json;

use super::{bounded, failed, Failed, NodeSync, WATCH_SECONDS};
use crate::node::objects;
use crate::runtime::logs::cri::rfc3339_nano;

impl NodeSync {
    fn pods_api(&self, client: &Client) -> Api<Pod> {
        Api::all(client.clone())
    }

    fn selector(&self) -> String {
        format!("spec.nodeName={}", self.options.identity.name)
    }

    pub(super) async fn list_pods(&mut self, client: &Client) -> Result<(), Failed> {
        let list = bounded(
            "list pods",
            self.pods_api(client)
                .list(&ListParams::default().fields(&self.selector())),
        )
        .await?;
        self.pods = list.items.into_iter().map(|p| (key(&p), p)).collect();
        self.resource_version = list.metadata.resource_version.unwrap_or_default();
        Ok(())
    }

    pub(super) async fn watch_pods(&mut self, client: &Client) -> Result<(), Failed> {
        let params = WatchParams::default()
            .fields(&self.selector())
            .timeout(WATCH_SECONDS);
        let stream = bounded(
            "watch pods",
            self.pods_api(client).watch(&params, &self.resource_version),
        )
        .await?;
        self.events = Some(stream.boxed());
        Ok(())
    }

    pub(super) fn on_event(
        &mut self,
        event: Option<kube::Result<WatchEvent<Pod>>>,
    ) -> Result<(), Failed> {
        match event {
            Some(Ok(WatchEvent::Added(pod) | WatchEvent::Modified(pod))) => {
                self.remember_version(&pod);
                self.pods.insert(key(&pod), pod);
            }
            Some(Ok(WatchEvent::Deleted(pod))) => {
                self.remember_version(&pod);
                // The replacement of a deleted mirror pod may be known already (we created it):
                // only the pod with this UID is gone.
                let name = key(&pod);
                if self.pods.get(&name).map(|p| &p.metadata.uid) == Some(&pod.metadata.uid) {
                    self.pods.remove(&name);
                }
            }
            Some(Ok(WatchEvent::Bookmark(bookmark))) => {
                self.resource_version = bookmark.metadata.resource_version;
            }
            // Expired version or another watch error: list again.
            Some(Ok(WatchEvent::Error(e))) => {
                self.events = None;
                if e.code != 410 {
                    return Err(Failed::new(format!("watch pods: {} {}", e.code, e.message)));
                }
            }
            Some(Err(e)) => {
                self.events = None;
                return Err(failed("watch pods")(e));
            }
            // The server ended the watch: go on from the last version.
            None => self.events = None,
        }
        Ok(())
    }

    fn remember_version(&mut self, pod: &Pod) {
        if let Some(version) = &pod.metadata.resource_version {
            self.resource_version = version.clone();
        }
    }

    /// Mirror pods and rejections; returns how many static pods have a current mirror.
    pub(super) async fn reconcile(&mut self, client: &Client) -> Result<u32, Failed> {
        let published = self.states.borrow().clone();
        // Nothing is known before the supervisor's first state (an empty view would delete
        // every mirror pod at each agent start).
        if published.status.node_name.is_empty() {
            return Ok(0);
        }
        let Some(node_uid) = self.node_uid.clone() else {
            return Ok(0);
        };
        let node = self.options.identity.name.clone();
        let mut wanted = BTreeSet::new();
        let mut current = 0;
        for status in published.status.pods.iter().filter(|p| !p.terminating) {
            let Some(pod) = published.pod(&status.uid) else {
                continue;
            };
            let name = format!("{}/{}", pod.namespace, pod.full_name);
            wanted.insert(name.clone());
            let seen = self
                .seen
                .entry(pod.uid.to_string())
                .or_insert_with(|| rfc3339_nano(SystemTime::now()))
                .clone();
            let namespaced: Api<Pod> = Api::namespaced(client.clone(), &pod.namespace);
            let existing = self.pods.get(&name).cloned();
            let mirror = match existing {
                Some(existing) if objects::mirror_is_current(&existing, &pod.uid) => existing,
                Some(existing) if !objects::is_mirror(&existing) => continue,
                other => {
                    if let Some(old) = other {
                        self.delete_mirror(&namespaced, &old).await?;
                    }
                    let mirror = objects::mirror_pod(pod, &node, &node_uid, &seen);
                    let created = match bounded(
                        &format!("create mirror pod {name}"),
                        namespaced.create(&PostParams::default(), &mirror),
                    )
                    .await
                    {
                        Ok(created) => {
                            if self.options.print_events {
                                println!("[agent] API sync: created mirror pod {name}");
                            }
                            created
                        }
                        // Still there (its deletion not yet seen): the next event retries.
                        Err(e) if e.is_conflict() => {
                            if self.options.print_events {
                                println!(
                                    "[agent] API sync: mirror pod {name} still exists; \
                                     waiting for its deletion"
                                );
                            }
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    self.pods.insert(name.clone(), created.clone());
                    created
                }
            };
            let mirror_uid = mirror.metadata.uid.clone().unwrap_or_default();
            let posted = self.posted_mirror_status.get(&mirror_uid).cloned();
            let previous = posted.as_ref().map(|(v, _)| v.clone()).or_else(|| {
                mirror
                    .status
                    .as_ref()
                    .and_then(|s| serde_json::to_value(s).ok())
            });
            let now = objects::trim_nanos(&rfc3339_nano(SystemTime::now()));
            let desired = objects::mirror_status(
                pod,
                status,
                &self.options.identity.address,
                previous.as_ref(),
                &now,
            );
            // Post when our view changed, or when someone else changed the stored status (the
            // node lifecycle controller marks pods NotReady while the Node is): as the kubelet's
            // status manager, which compares with the mirror pod it sees.
            let actual = mirror
                .status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_default();
            let ours_changed = posted.as_ref().map(|(v, _)| v) != Some(&desired);
            // At most one correction per status period, should the server store our status in a
            // form that never compares equal.
            let overwritten = !objects::says_all_of(&actual, &desired)
                && posted.is_none_or(|(_, at)| at.elapsed() >= self.options.status_update);
            if ours_changed || overwritten {
                let patch = json!({"metadata": {"uid": mirror_uid}, "status": desired});
                bounded(
                    &format!("update status of mirror pod {name}"),
                    namespaced.patch_status(
                        &pod.full_name,
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    ),
                )
                .await?;
                self.posted_mirror_status
                    .insert(mirror_uid, (desired, Instant::now()));
            }
            current += 1;
        }
        let others: Vec<Pod> = self
            .pods
            .iter()
            .filter(|(name, _)| !wanted.contains(*name))
            .map(|(_, pod)| pod.clone())
            .collect();
        for pod in others {
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let namespaced: Api<Pod> = Api::namespaced(client.clone(), &namespace);
            if objects::is_mirror(&pod) {
                self.delete_mirror(&namespaced, &pod).await?;
            } else {
                self.reject(&namespaced, &pod, published.status.pods.len())
                    .await?;
            }
        }
        let live: BTreeSet<&String> = self
            .pods
            .values()
            .filter_map(|p| p.metadata.uid.as_ref())
            .collect();
        self.posted_mirror_status
            .retain(|uid, _| live.contains(uid));
        Ok(current)
    }

    /// Deletes a mirror pod now (grace 0) if it is still the one we saw (UID precondition).
    async fn delete_mirror(&mut self, api: &Api<Pod>, pod: &Pod) -> Result<(), Failed> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match bounded(
            &format!("delete mirror pod {name}"),
            api.delete(&name, &params),
        )
        .await
        {
            Ok(_) => {
                if self.options.print_events {
                    println!("[agent] API sync: deleted mirror pod {}", key(pod));
                }
            }
            // Gone already, or replaced by another: either way not ours to delete.
            Err(e) if e.is_not_found() || e.is_conflict() => {}
            Err(e) => return Err(e),
        }
        self.pods.remove(&key(pod));
        Ok(())
    }

    /// `rejectPod`: a pod bound to this node that is not a mirror never runs here.
    async fn reject(
        &mut self,
        api: &Api<Pod>,
        pod: &Pod,
        static_pods: usize,
    ) -> Result<(), Failed> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if self.rejected.contains(&uid)
            || matches!(phase, Some("Failed" | "Succeeded"))
            || pod.metadata.deletion_timestamp.is_some()
        {
            return Ok(());
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let mut patch = objects::rejected_status(static_pods);
        patch["metadata"] = json!({"uid": uid});
        bounded(
            &format!("reject pod {name}"),
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch)),
        )
        .await?;
        if self.options.print_events {
            println!("[agent] Rejected pod {name}: this node runs only its static pods");
        }
        self.rejected.insert(uid);
        Ok(())
    }
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}
