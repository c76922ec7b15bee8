//! kubeadm's `mark-control-plane` phase, run by `boot init` after post-boot with `admin.conf`:
//! the node's own credentials may not set `node-role.kubernetes.io/*` labels (NodeRestriction),
//! an admin may. Waits for the agent to register the Node, then adds the control-plane and
//! exclude-from-external-load-balancers labels and the control-plane taint.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::objects::{control_plane_taint, CONTROL_PLANE_LABEL, EXCLUDE_LB_LABEL};
use crate::kubeapi::{ApiError, Caller};

/// kubeadm's `APICallRetryInterval`.
const POLL: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    #[error(transparent)]
    Client(#[from] ApiError),
    #[error("the Node {node} did not appear within {after:?} (last: {last})")]
    NoNode {
        node: String,
        after: Duration,
        last: String,
    },
    #[error("cannot mark the Node {node}: {detail}")]
    Patch { node: String, detail: String },
}

impl MarkError {
    pub fn hint(&self) -> &'static str {
        match self {
            MarkError::NoNode { .. } => "the agent registers the Node with kubelet.conf: see `boot status` for its API sync line",
            _ => "check that admin.conf works: kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes",
        }
    }
}

/// Labels and taints the node; returns kubeadm's lines.
pub async fn mark_control_plane(
    kubernetes_dir: &Path,
    node: &str,
    timeout: Duration,
) -> Result<Vec<String>, MarkError> {
    let admin =
        Caller::from_file(&kubernetes_dir.join(crate::postboot::ADMIN_CONF), timeout).await?;
    // An API server without Nodes (the test suite's stand-in) can have none to mark; every real
    // kube-apiserver lists them.
    let serves_nodes = tokio::time::timeout(timeout, admin.client.list_core_api_resources("v1"))
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|list| list.resources.iter().any(|r| r.name == "nodes"));
    if !serves_nodes {
        return Ok(vec![format!(
            "[mark-control-plane] Skipped: the API server at {} lists no Nodes in its discovery",
            admin.server
        )]);
    }
    let nodes: Api<Node> = Api::all(admin.client.clone());
    let deadline = tokio::time::Instant::now() + timeout;
    let current = loop {
        let last = match tokio::time::timeout(POLL * 4, nodes.get_opt(node)).await {
            Ok(Ok(Some(found))) => break found,
            Ok(Ok(None)) => "not registered yet".to_string(),
            Ok(Err(e)) => crate::kubeapi::describe(&e),
            Err(_) => "no answer".to_string(),
        };
        if tokio::time::Instant::now() + POLL > deadline {
            return Err(MarkError::NoNode {
                node: node.to_string(),
                after: timeout,
                last,
            });
        }
        tokio::time::sleep(POLL).await;
    };
    let mut taints = current
        .spec
        .and_then(|s| s.taints)
        .map(|t| serde_json::to_value(t).unwrap_or_default())
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default();
    let taint = control_plane_taint();
    if !taints
        .iter()
        .any(|t| t["key"] == taint["key"] && t["effect"] == taint["effect"])
    {
        taints.push(taint);
    }
    let patch = json!({
        "metadata": {"labels": {CONTROL_PLANE_LABEL: "", EXCLUDE_LB_LABEL: ""}},
        "spec": {"taints": taints},
    });
    let patch = &patch;
    admin
        .call(|client| async move {
            Api::<Node>::all(client)
                .patch(node, &PatchParams::default(), &Patch::Merge(patch))
                .await
        })
        .await
        .map_err(|failure| MarkError::Patch {
            node: node.to_string(),
            detail: failure.detail(admin.timeout),
        })?;
    Ok(vec![
        format!("[mark-control-plane] Marking the node {node} as control-plane by adding the labels: [{CONTROL_PLANE_LABEL} {EXCLUDE_LB_LABEL}]"),
        format!("[mark-control-plane] Marking the node {node} as control-plane by adding the taints [{CONTROL_PLANE_LABEL}:NoSchedule]"),
    ])
}
