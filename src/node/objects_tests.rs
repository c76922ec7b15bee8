use super::*;
use crate::agent::source::StaticPod;
use crate::agent::status::{
    AgentStatus, ContainerState, ContainerStatus, PodPhase, PodStatus, Terminated,
};
use serde_json::{json, Value};
use std::path::Path;

fn static_pod() -> StaticPod {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\n  labels: {tier: control-plane}\nspec:\n  hostNetwork: true\n  containers:\n  - name: kube-apiserver\n    image: registry.k8s.io/kube-apiserver:v1.36.2\n    resources: {requests: {cpu: 250m}}\n";
    StaticPod::parse(
        Path::new("/m/kube-apiserver.yaml"),
        yaml.as_bytes(),
        "node-a",
    )
    .unwrap()
}

fn identity() -> NodeIdentity {
    NodeIdentity {
        name: "node-a".into(),
        address: "10.0.0.5".into(),
        hostname: "node-a".into(),
        port: 10250,
        version: "v1.36.2+boot-0.1.0".into(),
    }
}

fn pod_status(pod: &StaticPod, ready: bool, state: ContainerState, restarts: u32) -> PodStatus {
    PodStatus {
        name: pod.full_name.to_string(),
        namespace: pod.namespace.to_string(),
        uid: pod.uid.to_string(),
        manifest: pod.path.clone(),
        phase: PodPhase::Running,
        terminating: false,
        ready,
        network: "host".into(),
        pod_ip: None,
        ignored_fields: vec![],
        restarts,
        manifest_error: None,
        reason: (!ready).then(|| "probe failing".into()),
        init_containers: vec![],
        containers: vec![ContainerStatus {
            name: "kube-apiserver".into(),
            state,
            ready,
            started: true,
            restart_count: restarts,
            last_state: Some(Terminated {
                exit_code: None,
                signal: Some(9),
                reason: "Error".into(),
                message: None,
                started_at: "2024-01-01T00:00:00.5Z".into(),
                finished_at: "2024-01-01T00:00:01Z".into(),
            }),
            probes: vec![],
            log_path: "/l/0.log".into(),
            image: None,
            image_id: None,
        }],
    }
}

fn running() -> ContainerState {
    ContainerState::Running {
        pid: 42,
        started_at: "2024-01-01T00:00:02.25Z".into(),
        adopted: false,
        stopping: None,
    }
}

#[test]
fn the_mirror_pod_carries_the_kubelet_annotations_and_one_node_owner() {
    let pod = static_pod();
    let mirror = mirror_pod(&pod, "node-a", "node-uid", "2024-01-01T00:00:00Z");
    let annotations = mirror.metadata.annotations.clone().unwrap();
    assert_eq!(
        mirror.metadata.name.as_deref(),
        Some("kube-apiserver-node-a")
    );
    assert_eq!(mirror.metadata.namespace.as_deref(), Some("kube-system"));
    assert_eq!(annotations[CONFIG_MIRROR], pod.uid.as_str());
    assert_eq!(annotations[CONFIG_HASH], pod.uid.as_str());
    assert_eq!(annotations[CONFIG_SOURCE], "file");
    let owners = mirror.metadata.owner_references.clone().unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].uid.as_str()),
        ("Node", "node-uid")
    );
    assert_eq!(owners[0].controller, Some(true));
    assert_eq!(owners[0].block_owner_deletion, None);
    let spec = mirror.spec.clone().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("node-a"));
    assert!(spec.tolerations.unwrap().iter().any(
        |t| t.operator.as_deref() == Some("Exists") && t.effect.as_deref() == Some("NoExecute")
    ));
    assert!(mirror_is_current(&mirror, &pod.uid));
    assert!(!mirror_is_current(&mirror, "another-hash"));
    assert!(is_mirror(&mirror));
}

#[test]
fn mirror_status_reports_containers_and_keeps_transition_times() {
    let pod = static_pod();
    let first = mirror_status(
        &pod,
        &pod_status(&pod, false, running(), 2),
        "10.0.0.5",
        None,
        "T1",
    );
    assert_eq!(first["phase"], "Running");
    assert_eq!(first["qosClass"], "Burstable");
    assert_eq!(first["podIP"], "10.0.0.5");
    let c = &first["containerStatuses"][0];
    assert_eq!(c["restartCount"], 2);
    assert_eq!(c["image"], "registry.k8s.io/kube-apiserver:v1.36.2");
    assert_eq!(c["state"]["running"]["startedAt"], "2024-01-01T00:00:02Z");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 137);
    assert_eq!(c["containerID"], "boot-process://42");
    let ready = |s: &Value| {
        s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone()
    };
    assert_eq!(ready(&first)["status"], "False");
    assert_eq!(ready(&first)["reason"], "ContainersNotReady");
    // Same status later: the transition time stays; a change takes the new time.
    let again = mirror_status(
        &pod,
        &pod_status(&pod, false, running(), 2),
        "10.0.0.5",
        Some(&first),
        "T2",
    );
    assert_eq!(again, first);
    let now_ready = mirror_status(
        &pod,
        &pod_status(&pod, true, running(), 2),
        "10.0.0.5",
        Some(&first),
        "T3",
    );
    assert_eq!(ready(&now_ready)["lastTransitionTime"], "T3");
    assert_eq!(now_ready["startTime"], "T1");
}

fn ready_condition(status: &Value) -> Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone()
}

/// The kubelet's Ready is about the node, not its pods: a static pod that is not ready (startup
/// probes after every init) leaves the node Ready, so that nothing taints it `not-ready`.
#[test]
fn node_status_is_ready_whatever_its_pods_and_fits_no_workload() {
    let pod = static_pod();
    let host = HostInfo {
        cpus: 2,
        memory_bytes: 4 << 30,
        disk_bytes: 100 << 30,
        arch: "amd64".into(),
        ..Default::default()
    };
    let mut agent = AgentStatus {
        pods: vec![pod_status(&pod, true, running(), 0)],
        ..Default::default()
    };
    let status = node_status(&identity(), &host, &agent, &[], None, "T1");
    let conditions = status["conditions"].as_array().unwrap();
    assert_eq!(conditions.last().unwrap()["type"], "Ready");
    assert_eq!(conditions.last().unwrap()["status"], "True");
    assert_eq!(conditions[0]["reason"], "KubeletHasSufficientMemory");
    assert_eq!(status["allocatable"]["pods"], "1");
    assert_eq!(status["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
    assert_eq!(status["addresses"][0]["type"], "InternalIP");
    agent.pods[0] = pod_status(&pod, false, running(), 0);
    let pod_unready = node_status(&identity(), &host, &agent, &[], Some(&status), "T2");
    let ready = ready_condition(&pod_unready);
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["reason"].as_str(),
            ready["lastTransitionTime"].as_str()
        ),
        (Some("True"), Some("KubeletReady"), Some("T1"))
    );
    assert_eq!(
        without_heartbeats(&status),
        without_heartbeats(&pod_unready)
    );

    // The supervisor loop silent past the kubelet's PLEG threshold: the node is not ready.
    assert!(node_problems(PLEG_THRESHOLD - Duration::from_secs(1)).is_empty());
    let problems = node_problems(PLEG_THRESHOLD + Duration::from_secs(7));
    let stuck = node_status(&identity(), &host, &agent, &problems, Some(&status), "T3");
    let ready = ready_condition(&stuck);
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["reason"].as_str(),
            ready["lastTransitionTime"].as_str()
        ),
        (Some("False"), Some("KubeletNotReady"), Some("T3"))
    );
    assert_eq!(
        ready["message"],
        "PLEG is not healthy: pleg was last seen active 187s ago; threshold is 180s"
    );
    let same = node_status(&identity(), &host, &agent, &problems, Some(&stuck), "T4");
    assert_eq!(without_heartbeats(&same), without_heartbeats(&stuck));
}

#[test]
fn node_lease_and_rejection_objects() {
    let node = node(&identity(), "amd64");
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
    assert_eq!(node["spec"]["taints"][0]["key"], CONTROL_PLANE_LABEL);
    let lease = lease("node-a", "u", "2024-01-01T00:00:00.000000Z", Some("7"));
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(lease["metadata"]["resourceVersion"], "7");
    let rejected = rejected_status(4);
    assert_eq!(rejected["status"]["phase"], "Failed");
    assert_eq!(rejected["status"]["reason"], "OutOfpods");
    assert!(rejected["status"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Pod was rejected: "));
}

#[test]
fn says_all_of_ignores_what_the_server_omits_and_catches_what_it_changed() {
    let desired = json!({"phase": "Running", "initContainerStatuses": [], "conditions": [{"type": "Ready", "status": "True"}]});
    let actual = json!({"phase": "Running", "qosClass": "BestEffort", "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null}]});
    assert!(says_all_of(&actual, &desired));
    let overwritten =
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]});
    assert!(!says_all_of(&overwritten, &desired));
    assert!(!says_all_of(&Value::Null, &desired));
}
