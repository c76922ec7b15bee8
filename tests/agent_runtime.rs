//! The agent reaches containers only through the runtime: exec probes run inside the container
//! (its network namespace), and slow runtime work never holds the agent's async threads.

#[path = "common/agent_support.rs"]
mod agent_support;
#[path = "common/require.rs"]
mod require;

use std::time::Duration;

use agent_support::*;

const T: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_probes_run_inside_the_pods_network_namespace() {
    if !require::root("network namespaces") {
        return;
    }
    let mut agent = TestAgent::new(|_| {});
    agent.start().await;
    let ns_file = agent.path("container-netns");
    let script = format!(
        "readlink /proc/self/ns/net > {0}.tmp && mv {0}.tmp {0}; exec sleep 1012",
        ns_file.display()
    );
    // Ready only when the probe sees the container's namespace, not the host's.
    let probe = format!(
        "    readinessProbe:\n      exec:\n        command: [sh, -c, '[ \"$(readlink /proc/self/ns/net)\" = \"$(cat {})\" ]']\n      periodSeconds: 1\n",
        ns_file.display()
    );
    let pod = sh_pod("inside", &script, &probe, "")
        .replace("  hostNetwork: true\n", "  hostNetwork: false\n");
    agent.write_manifest("inside.yaml", &pod);
    agent.wait_ready("inside", T).await;
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let container_ns = std::fs::read_to_string(&ns_file).unwrap();
    assert_ne!(
        container_ns.trim(),
        host_ns.to_string_lossy(),
        "its own namespace"
    );
}
