//! The OCI runtime against the real kernel (root): isolation, the Kubernetes process rules, exec
//! probes inside the container, stop and adoption, and nothing left after removal.

#[path = "common/oci_support.rs"]
mod oci_support;
#[path = "common/require.rs"]
mod require;

use std::path::{Path, PathBuf};
use std::time::Duration;

use boot::runtime::names::{Namespace, PodName, PodUid};
use boot::runtime::{
    ContainerExit, ContainerHandle, ContainerRequest, ExecEnd, ExecTarget, PodRef, Runtime, Sandbox,
};
use k8s_openapi::api::core::v1::PodSpec;
use oci_support::*;

const LONG: Duration = Duration::from_secs(20);

fn prerequisites() -> bool {
    require::root("mounts, namespaces and cgroups")
        && require::file("/bin/busybox").is_some()
        && require::file("/proc/self/ns/ipc").is_some()
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    layers: Vec<PathBuf>,
    rt: tokio::runtime::Runtime,
}

impl Drop for Env {
    fn drop(&mut self) {
        remove_cgroup_parent(&cgroup_parent(&self.root));
    }
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let layers = busybox_layers(dir.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Env {
        root,
        layers,
        rt,
        _dir: dir,
    }
}

/// A started container and what removes it (and its sandbox) even when the test fails.
struct Running<'a> {
    runtime: &'a boot::runtime::oci::OciRuntime,
    rt: &'a tokio::runtime::Runtime,
    sandbox: Sandbox,
    handles: Vec<ContainerHandle>,
    /// The containers' exits, which reap them (index by index with `handles`).
    exits: Vec<Option<boot::runtime::BoxFuture<ContainerExit>>>,
}

impl Running<'_> {
    /// Stops container `i`, waits for its exit and removes it.
    fn remove(&mut self, i: usize) {
        let handle = self.handles[i].clone();
        self.rt
            .block_on(self.runtime.stop_container(&handle, Duration::ZERO));
        if let Some(exit) = self.exits[i].take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(LONG, exit).await });
        }
        self.rt.block_on(self.runtime.cleanup_container(&handle));
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        for i in 0..self.handles.len() {
            self.remove(i);
        }
        self.runtime.remove_sandbox(&self.sandbox);
    }
}

struct PodNames {
    uid: PodUid,
    namespace: Namespace,
    full_name: PodName,
}

impl PodNames {
    fn new(uid: &str) -> PodNames {
        PodNames {
            uid: PodUid::new(uid).unwrap(),
            namespace: Namespace::new("default").unwrap(),
            full_name: PodName::new("isolation-node1").unwrap(),
        }
    }

    fn pod_ref<'a>(&'a self, spec: &'a PodSpec) -> PodRef<'a> {
        PodRef {
            uid: &self.uid,
            namespace: &self.namespace,
            full_name: &self.full_name,
            spec,
        }
    }
}

fn start<'a>(
    env: &'a Env,
    runtime: &'a boot::runtime::oci::OciRuntime,
    uid: &str,
    spec: &PodSpec,
) -> Running<'a> {
    let _guard = env.rt.enter();
    let names = PodNames::new(uid);
    let pod = names.pod_ref(spec);
    let sandbox = runtime.create_sandbox(pod).unwrap();
    let mut running = Running {
        runtime,
        rt: &env.rt,
        sandbox: sandbox.clone(),
        handles: Vec::new(),
        exits: Vec::new(),
    };
    for container in &spec.containers {
        let request = ContainerRequest {
            pod,
            sandbox: &sandbox,
            container,
            restart_count: 0,
            log_path: env
                .root
                .join(format!("var/log/pods/{uid}/{}/0.log", container.name)),
        };
        let (handle, exit) = runtime
            .start_container(&request)
            .unwrap_or_else(|e| panic!("{e}"));
        running.handles.push(handle);
        running.exits.push(Some(exit));
    }
    running
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn isolation_capabilities_read_only_mounts_and_the_process_rules() {
    if !prerequisites() {
        return;
    }
    let env = env();
    let out = env.root.join("out");
    let ro = env.root.join("ro");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    // A host file the container must not see: it exists on the host at this very path.
    let secret = env.root.join("host-secret");
    std::fs::write(&secret, "secret").unwrap();
    let spec = pod_spec(&format!(
        r#"
securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}
containers:
- name: root
  image: {IMAGE}
  securityContext: {{runAsUser: 0}}
  command: [/bin/sh, -c]
  # `$$$$` is the shell's `$$` after the kubelet's `$$` escape.
  args:
  - |
    echo $$$$ > /out/pid
    ls / > /out/root
    grep CapEff /proc/self/status > /out/cap
    if test -e {secret}; then echo visible; else echo hidden; fi > /out/secret
    if echo x > /ro/file; then echo writable; else echo read-only; fi > /out/ro
    cat /etc/motd > /out/motd
    hostname > /out/hostname
    grep Seccomp: /proc/self/status > /out/seccomp
    cat /proc/kcore | wc -c > /out/kcore
    if echo 1 > /proc/sys/kernel/domainname; then echo writable; else echo read-only; fi > /out/proc-sys
    touch /out/root-done
    exec sleep 1000
- name: user
  image: {IMAGE}
  args: ['id -u > /out/uid; id -g > /out/gid; id -G > /out/groups; pwd > /out/pwd; env > /out/env; echo "$0 $1" > /out/args; hostname > /out/hostname-user; touch /out/user-done; exec sleep 1000', first-arg, second-arg]
  env: [{{name: SHARED, value: pod}}, {{name: OWN, value: $(SHARED)-own}}]
  volumeMounts: [{{name: out, mountPath: /out}}]
volumes:
- {{name: out, hostPath: {{path: {out}}}}}
- {{name: ro, hostPath: {{path: {ro}}}}}
"#,
        secret = secret.display(),
        out = out.display(),
        ro = ro.display(),
    ));
    let mut spec = spec;
    // The root container mounts both volumes; `ro` read-only.
    spec.containers[0].volume_mounts = Some(
        serde_yaml::from_str(
            "[{name: out, mountPath: /out}, {name: ro, mountPath: /ro, readOnly: true}]",
        )
        .unwrap(),
    );
    let runtime = runtime(&env.root, &env.layers);
    let running = start(&env, &runtime, "0123456789abcdef0123456789abcde1", &spec);
    let reported = || out.join("root-done").exists() && out.join("user-done").exists();
    wait::poll_until(
        LONG,
        wait::EVERY,
        || reported().then_some(()),
        || {
            format!(
                "the containers did not report; their logs:\n{}",
                logs(&env.root)
            )
        },
    );

    // Its own pid namespace and root file system.
    assert_eq!(read(&out.join("pid")), "1");
    let listing = read(&out.join("root"));
    assert!(listing.lines().any(|l| l == "layer-marker"), "{listing}");
    assert!(
        !listing.lines().any(|l| l == "work" || l == "usr"),
        "{listing}"
    );
    assert_eq!(read(&out.join("motd")), "top", "the top layer wins");
    assert_eq!(read(&out.join("secret")), "hidden");
    // containerd's 14 default capabilities.
    assert_eq!(read(&out.join("cap")), "CapEff:\t00000000a80425fb");
    assert_eq!(read(&out.join("ro")), "read-only");
    // The pod's RuntimeDefault seccomp profile is in force (mode 2, a filter); the kubelet's
    // masked and read-only /proc paths.
    assert_eq!(read(&out.join("seccomp")), "Seccomp:\t2");
    assert_eq!(read(&out.join("kcore")), "0");
    assert_eq!(read(&out.join("proc-sys")), "read-only");
    assert!(!ro.join("file").exists());
    // One UTS namespace for the pod, named after the pod.
    assert_eq!(read(&out.join("hostname")), "isolation-node1");
    assert_eq!(read(&out.join("hostname-user")), "isolation-node1");

    // The image's user (web: 1000, group 1001, member of extra 2000), args after the Entrypoint,
    // the image's WorkingDir, image Env then the container's env.
    assert_eq!(read(&out.join("uid")), "1000");
    assert_eq!(read(&out.join("gid")), "1001");
    assert!(read(&out.join("groups")).split(' ').any(|g| g == "2000"));
    assert_eq!(read(&out.join("pwd")), "/tmp");
    assert_eq!(read(&out.join("args")), "first-arg second-arg");
    let env_text = read(&out.join("env"));
    for line in [
        "FROM_IMAGE=image",
        "SHARED=pod",
        "OWN=pod-own",
        "PATH=/bin",
        "HOSTNAME=isolation-node1",
    ] {
        assert!(env_text.lines().any(|l| l == line), "{line} in\n{env_text}");
    }
    drop(running);
}

#[test]
fn exec_probes_run_inside_the_container() {
    if !prerequisites() {
        return;
    }
    let env = env();
    let spec = pod_spec(&format!(
        "containers:\n- name: main\n  image: {IMAGE}\n  command: [/bin/sleep, '1000']\n"
    ));
    let runtime = runtime(&env.root, &env.layers);
    let running = start(&env, &runtime, "0123456789abcdef0123456789abcde2", &spec);
    let handle = running.handles[0].clone();
    let names = PodNames::new("0123456789abcdef0123456789abcde2");
    let exec = |cmd: &[&str], timeout: Duration| {
        let command: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        let target = ExecTarget {
            pod: names.pod_ref(&spec),
            sandbox: &running.sandbox,
            container: &spec.containers[0],
            handle: &handle,
        };
        env.rt
            .block_on(runtime.exec_sync(target, &command, timeout))
    };
    assert_eq!(
        exec(&["test", "-e", "/layer-marker"], LONG).end,
        ExecEnd::Exited(0)
    );
    let out = exec(&["sh", "-c", "id -u; cat /proc/1/comm; exit 3"], LONG);
    assert_eq!(
        (out.end, String::from_utf8_lossy(&out.output).to_string()),
        (ExecEnd::Exited(3), "1000\nsleep\n".to_string()),
        "the container's user, and its pid 1 is the container's process"
    );
    assert_eq!(
        exec(&["sleep", "30"], Duration::from_millis(300)).end,
        ExecEnd::TimedOut
    );
    match exec(&["/no/such/program"], LONG).end {
        ExecEnd::CannotStart(_) | ExecEnd::Exited(127) => {}
        other => panic!("expected a failure to start, got {other:?}"),
    }
    drop(running);
}

/// The security fields of `/proc/<pid>/status` an exec'd process must share with the container's
/// init: its seccomp mode and filter count, no_new_privs and capability sets.
fn security_fields(status: &str) -> Vec<String> {
    const FIELDS: [&str; 7] = [
        "Seccomp:",
        "Seccomp_filters:",
        "NoNewPrivs:",
        "CapEff:",
        "CapPrm:",
        "CapBnd:",
        "CapAmb:",
    ];
    status
        .lines()
        .filter(|l| FIELDS.iter().any(|f| l.starts_with(f)))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn exec_gets_the_containers_seccomp_profile_capabilities_and_no_new_privs() {
    if !prerequisites() {
        return;
    }
    let env = env();
    // One container as kubeadm's control-plane pods (RuntimeDefault, privilege escalation
    // allowed: the profile must be loaded before the capabilities drop), one locked down
    // (no_new_privs, fewer capabilities), one without a profile, one privileged (no profile
    // despite the pod's, all capabilities, even where this host's bounding set lacks some), and
    // one as the image's non-root user with the pod's profile and privilege escalation allowed.
    let spec = pod_spec(&format!(
        r#"
securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}
containers:
- name: default
  image: {IMAGE}
  securityContext: {{runAsUser: 0}}
  command: [/bin/sh, -c, 'busybox unshare -U true; echo $? >/tmp/unshare; exec sleep 1000']
- name: locked
  image: {IMAGE}
  securityContext:
    allowPrivilegeEscalation: false
    capabilities: {{drop: [ALL], add: [NET_BIND_SERVICE]}}
  command: [/bin/sleep, '1000']
- name: unconfined
  image: {IMAGE}
  securityContext: {{seccompProfile: {{type: Unconfined}}}}
  command: [/bin/sleep, '1000']
- name: privileged
  image: {IMAGE}
  securityContext: {{privileged: true, runAsUser: 0}}
  command: [/bin/sleep, '1000']
- name: user
  image: {IMAGE}
  command: [/bin/sleep, '1000']
"#
    ));
    let uid = "0123456789abcdef0123456789abcde5";
    let runtime = runtime(&env.root, &env.layers);
    let running = start(&env, &runtime, uid, &spec);
    let names = PodNames::new(uid);
    for (i, container) in spec.containers.iter().enumerate() {
        let handle = &running.handles[i];
        let init = security_fields(&read(Path::new(&format!("/proc/{}/status", handle.pid))));
        let target = ExecTarget {
            pod: names.pod_ref(&spec),
            sandbox: &running.sandbox,
            container,
            handle,
        };
        let command = ["cat", "/proc/self/status"].map(String::from);
        let out = env.rt.block_on(runtime.exec_sync(target, &command, LONG));
        assert_eq!(out.end, ExecEnd::Exited(0), "{}", container.name);
        let exec = security_fields(&String::from_utf8_lossy(&out.output));
        assert_eq!(
            exec, init,
            "{}: exec'd process against init",
            container.name
        );
        let mode = init.iter().find(|l| l.starts_with("Seccomp:")).unwrap();
        let expected = match container.name.as_str() {
            "unconfined" | "privileged" => "Seccomp: 0",
            _ => "Seccomp: 2",
        };
        assert_eq!(mode, expected, "{}", container.name);
        // The filter is the profile: RuntimeDefault refuses a user namespace (unshare without
        // CAP_SYS_ADMIN), which needs no capability and succeeds without a filter.
        let unshare = ["busybox", "unshare", "-U", "true"].map(String::from);
        let out = env.rt.block_on(runtime.exec_sync(target, &unshare, LONG));
        let unconfined = expected == "Seccomp: 0";
        assert_eq!(
            out.end == ExecEnd::Exited(0),
            unconfined,
            "{}: exec'd unshare -U: {:?} {}",
            container.name,
            out.end,
            String::from_utf8_lossy(&out.output)
        );
    }
    // The same in the container's init (the shell that execs sleep), which wrote its status.
    let default = ExecTarget {
        pod: names.pod_ref(&spec),
        sandbox: &running.sandbox,
        container: &spec.containers[0],
        handle: &running.handles[0],
    };
    let cat = ["cat", "/tmp/unshare"].map(String::from);
    let mut status = String::new();
    wait_for("the init's unshare status", LONG, || {
        let out = env.rt.block_on(runtime.exec_sync(default, &cat, LONG));
        status = String::from_utf8_lossy(&out.output).trim().to_string();
        out.end == ExecEnd::Exited(0) && !status.is_empty()
    });
    assert_ne!(status, "0", "unshare -U in the init under RuntimeDefault");
    // Privileged: every capability this process (the agent) holds, as containerd grants its own.
    let own = security_fields(&read(Path::new("/proc/self/status")));
    let privileged = security_fields(&read(Path::new(&format!(
        "/proc/{}/status",
        running.handles[3].pid
    ))));
    for field in ["CapEff:", "CapBnd:"] {
        let value = |fields: &[String]| fields.iter().find(|l| l.starts_with(field)).cloned();
        assert_eq!(value(&privileged), value(&own), "privileged {field}");
    }
    // The two confined containers differ where the test made them differ.
    let nnp = |i: usize| {
        security_fields(&read(Path::new(&format!(
            "/proc/{}/status",
            running.handles[i].pid
        ))))
        .into_iter()
        .find(|l| l.starts_with("NoNewPrivs:"))
    };
    assert_eq!(nnp(0).as_deref(), Some("NoNewPrivs: 0"));
    assert_eq!(nnp(1).as_deref(), Some("NoNewPrivs: 1"));
    drop(running);
}

#[test]
fn exit_codes_stop_adoption_and_nothing_left_after_removal() {
    if !prerequisites() {
        return;
    }
    let env = env();
    let uid = "0123456789abcdef0123456789abcde3";
    let spec = pod_spec(&format!(
        r#"
containers:
- name: quits
  image: {IMAGE}
  command: [/bin/sh, -c, 'exit 3']
- name: stays
  image: {IMAGE}
  command: [/bin/sleep, '1000']
"#
    ));
    let runtime = runtime(&env.root, &env.layers);
    let mut running = start(&env, &runtime, uid, &spec);
    let quits_exit = running.exits[0].take().unwrap();
    assert_eq!(
        env.rt
            .block_on(async { tokio::time::timeout(LONG, quits_exit).await }),
        Ok(ContainerExit::Code(3))
    );
    let quits = running.handles[0].clone();
    env.rt.block_on(runtime.cleanup_container(&quits));

    // A restarted agent (a second runtime over the same root) adopts the running one …
    let stays = running.handles[1].clone();
    running.exits[1] = None;
    let again = oci_support::runtime(&env.root, &env.layers);
    let adopted = again
        .adopt_container(&stays)
        .expect("adopts the live container");
    let mut stale = stays.clone();
    stale.start_ticks += 1;
    assert!(
        again.adopt_container(&stale).is_none(),
        "never a reused pid"
    );
    // … stops it (sleep as a pid namespace's init has no SIGTERM handler, so the kernel drops
    // SIGTERM and SIGKILL ends it after the grace period) …
    env.rt
        .block_on(again.stop_container(&stays, Duration::from_millis(200)));
    // (This "restarted agent" is the same process, so it is still the parent and learns the
    // status; a really restarted one reports it unknown.)
    assert_eq!(
        env.rt
            .block_on(async { tokio::time::timeout(LONG, adopted).await }),
        Ok(ContainerExit::Signal(libc::SIGKILL))
    );
    env.rt.block_on(again.cleanup_container(&stays));
    running.handles.clear();
    running.exits.clear();
    again.remove_sandbox(&running.sandbox);

    // … and nothing is left: no mount, overlay directory, libcontainer state or cgroup.
    assert_eq!(mounts_under(&env.root), Vec::<String>::new());
    let containers = env.root.join("var/lib/boot/oci/containers");
    let left: Vec<_> = std::fs::read_dir(&containers)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "container directories left: {left:?}");
    let state = env.root.join("run/boot/oci/state");
    let left: Vec<_> = std::fs::read_dir(&state)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "libcontainer state left: {left:?}");
    assert!(!env.root.join("run/boot/oci/pods").join(uid).exists());
    for handle in [&quits, &stays] {
        for dir in &handle.cgroups {
            assert!(!dir.exists(), "cgroup {} left", dir.display());
        }
    }
}
