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

/// The process runtime, except that creating the sandbox of a pod named `hung-…` blocks until
/// released, as a `stat` of a hostPath on a dead NFS server does.
struct HungSandbox {
    inner: std::sync::Arc<dyn boot::runtime::Runtime>,
    gate: std::sync::Arc<Gate>,
}

#[derive(Default)]
struct Gate {
    state: std::sync::Mutex<(bool, bool)>, // (entered, released)
    changed: std::sync::Condvar,
}

impl Gate {
    fn block(&self) {
        let mut state = self.state.lock().unwrap();
        state.0 = true;
        self.changed.notify_all();
        // Bounded, so that a failing test cannot leave a thread behind for ever.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !state.1 && std::time::Instant::now() < deadline {
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }

    fn entered(&self) -> bool {
        self.state.lock().unwrap().0
    }

    fn release(&self) {
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

/// Releases the gate even when the test fails.
struct Release(std::sync::Arc<Gate>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.release();
    }
}

impl boot::runtime::Runtime for HungSandbox {
    fn create_sandbox(
        &self,
        pod: boot::runtime::PodRef<'_>,
    ) -> Result<boot::runtime::Sandbox, boot::runtime::RuntimeError> {
        if pod.full_name.starts_with("hung-") {
            self.gate.block();
        }
        self.inner.create_sandbox(pod)
    }
    fn remove_sandbox(&self, sandbox: &boot::runtime::Sandbox) {
        self.inner.remove_sandbox(sandbox)
    }
    fn remove_all(
        &self,
        sandboxes: &[boot::runtime::Sandbox],
    ) -> boot::runtime::network::sandbox::Teardown {
        self.inner.remove_all(sandboxes)
    }
    fn start_container(
        &self,
        request: &boot::runtime::ContainerRequest<'_>,
    ) -> Result<
        (
            boot::runtime::ContainerHandle,
            boot::runtime::BoxFuture<boot::runtime::ContainerExit>,
        ),
        boot::runtime::RuntimeError,
    > {
        self.inner.start_container(request)
    }
    fn adopt_container(
        &self,
        handle: &boot::runtime::ContainerHandle,
    ) -> Option<boot::runtime::BoxFuture<boot::runtime::ContainerExit>> {
        self.inner.adopt_container(handle)
    }
    fn stop_container(
        &self,
        handle: &boot::runtime::ContainerHandle,
        grace: Duration,
    ) -> boot::runtime::BoxFuture<()> {
        self.inner.stop_container(handle, grace)
    }
    fn cleanup_container(
        &self,
        handle: &boot::runtime::ContainerHandle,
    ) -> boot::runtime::BoxFuture<()> {
        self.inner.cleanup_container(handle)
    }
    fn exec_sync(
        &self,
        target: boot::runtime::ExecTarget<'_>,
        command: &[String],
        timeout: Duration,
    ) -> boot::runtime::BoxFuture<boot::runtime::ExecOutput> {
        self.inner.exec_sync(target, command, timeout)
    }
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings()
    }
    fn ignored_fields(&self, pod: boot::runtime::PodRef<'_>) -> Vec<String> {
        self.inner.ignored_fields(pod)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_host_path_holds_neither_status_nor_other_pods_probes() {
    let mut agent = TestAgent::new(|_| {});
    let gate = std::sync::Arc::new(Gate::default());
    let _release = Release(gate.clone());
    let runtime = HungSandbox {
        inner: boot::runtime::open(
            boot::runtime::RuntimeKind::Process,
            &agent.options.runtime_settings(),
            None,
        ),
        gate: gate.clone(),
    };
    agent.start_with_runtime(std::sync::Arc::new(runtime)).await;
    agent.write_manifest("hung.yaml", &sh_pod("hung", "exec sleep 1013", "", ""));
    wait_for_async("the hung sandbox", T, || gate.entered()).await;
    // While one pod's runtime call hangs, another pod starts and its exec probe runs.
    let probe =
        "    readinessProbe:\n      exec:\n        command: ['true']\n      periodSeconds: 1\n";
    agent.write_manifest("fine.yaml", &sh_pod("fine", "exec sleep 1014", probe, ""));
    agent.wait_ready("fine", T).await;
    let status = agent.status();
    let hung = status.pod("hung").expect("the hung pod is listed");
    assert!(!hung.healthy());
    gate.release();
    agent.wait_ready("hung", T).await;
}
