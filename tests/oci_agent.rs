//! The agent with the OCI runtime (root): a static pod's manifest becomes a container running
//! from its image, its output reaches the CRI log, and stopping the agent with
//! `stopPodsOnExit` leaves no mount behind.

#[path = "common/agent_support.rs"]
mod agent_support;
#[path = "common/oci_support.rs"]
mod oci_support;
#[path = "common/require.rs"]
mod require;

use std::sync::Arc;
use std::time::Duration;

use boot::agent::status::{self, ContainerState};
use boot::runtime::oci::image::StaticImages;
use oci_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_runs_as_a_container_from_its_image() {
    if !(require::root("mounts, namespaces and cgroups") && require::file("/bin/busybox").is_some())
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layers = busybox_layers(dir.path());
    let root_dir = dir.path().join("root");
    std::fs::create_dir_all(&root_dir).unwrap();
    let mut options = agent_support::test_options(&root_dir);
    options.stop_pods_on_exit = true;
    options.print_events = false;
    options.cgroup_parent = cgroup_parent(&root_dir);
    let _cleanup = HostCleanup {
        root: root_dir.clone(),
        cgroup_parent: options.cgroup_parent.clone(),
    };
    std::fs::create_dir_all(&options.manifest_dir).unwrap();
    let images = StaticImages::new();
    images.insert(IMAGE, image(layers));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(boot::agent::run_with_images(
        options.clone(),
        Arc::new(images),
        async {
            let _ = stopped.await;
        },
    ));
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: web, namespace: default}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {IMAGE}\n    args: ['echo hello from the image; exec sleep 1000']\n"
    );
    std::fs::write(options.manifest_dir.join("web.yaml"), manifest).unwrap();

    let socket = options.status_socket.clone();
    let socket = &socket;
    let (pid, log_path) = wait::poll_until_async(
        Duration::from_secs(30),
        Duration::from_millis(50),
        || async move {
            status::fetch(socket).await.ok().and_then(|s| {
                s.pods
                    .iter()
                    .find_map(|p| match &p.containers.first()?.state {
                        ContainerState::Running { pid, .. } => {
                            Some((*pid, p.containers[0].log_path.clone()))
                        }
                        _ => None,
                    })
            })
        },
        || format!("the pod did not run; logs:\n{}", logs(&root_dir)),
    )
    .await;
    // The container's process runs from the image's root file system, not the host's.
    assert!(std::path::Path::new(&format!("/proc/{pid}/root/layer-marker")).exists());
    assert!(!std::path::Path::new(&format!("/proc/{pid}/root/usr")).exists());
    wait_for(
        "the container's output in its log",
        Duration::from_secs(10),
        || {
            std::fs::read_to_string(&log_path)
                .is_ok_and(|t| t.contains("stdout F hello from the image"))
        },
    );

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(40), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z"))
        }
    );
    // The agent runs each container's cleanup as a task of its own, which may still be at work
    // when the agent returns.
    let containers = root_dir.join("var/lib/boot/oci");
    wait_for(
        "the overlay to be unmounted",
        Duration::from_secs(10),
        || mounts_under(&containers).is_empty(),
    );
    assert_eq!(
        mounts_under(&root_dir.join("run/boot")),
        Vec::<String>::new()
    );
}
