use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, PodSpec};
use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde_json::json;

use super::*;

fn container(value: serde_json::Value) -> Container {
    let mut value = value;
    value["name"] = json!("c");
    serde_json::from_value(value).unwrap()
}

fn pod(value: serde_json::Value) -> PodSpec {
    let mut value = value;
    value["containers"] = json!([]);
    serde_json::from_value(value).unwrap()
}

fn image() -> ImageConfig {
    ImageConfig {
        user: None,
        env: vec![
            "PATH=/image/bin".into(),
            "IMG=1".into(),
            "SHARED=image".into(),
        ],
        entrypoint: vec!["/entry".into()],
        cmd: vec!["--cmd".into()],
        working_dir: Some("/image-wd".into()),
        stop_signal: None,
    }
}

const ROOT_USER: ResolvedUser = ResolvedUser {
    uid: 0,
    gid: 0,
    additional_gids: Vec::new(),
};

fn spec_with(pod: &PodSpec, c: &Container, image: &ImageConfig) -> Result<Spec, String> {
    build(&SpecInput {
        pod,
        container: c,
        image,
        hostname: "web-node1",
        user: &ROOT_USER,
        rootfs: PathBuf::from("/state/rootfs"),
        namespaces: PodNamespaces {
            net: Some("/run/boot/netns/uid".into()),
            ipc: Some("/run/boot/oci/uid/ipc".into()),
            uts: Some("/run/boot/oci/uid/uts".into()),
        },
        files: InjectedFiles {
            hosts: Some("/pods/uid/etc-hosts".into()),
            hostname: Some("/pods/uid/hostname".into()),
            resolv_conf: Some("/pods/uid/resolv.conf".into()),
            termination_log: Some(("/pods/uid/c/abcd".into(), "/dev/termination-log".into())),
            shm: Some("/pods/uid/shm".into()),
        },
        volume_paths: &[
            ("certs".into(), PathBuf::from("/etc/kubernetes/pki")),
            ("data".into(), PathBuf::from("/var/lib/etcd")),
            ("dev".into(), PathBuf::from("/dev")),
        ],
        cgroups_path: PathBuf::from("/boot/poduid/c-0"),
        cgroup_v2: false,
        thermal_throttle_paths: vec!["/sys/devices/system/cpu/cpu0/thermal_throttle".into()],
        current_capabilities: &agent_capabilities(),
    })
}

/// An agent without `CAP_SYS_RESOURCE` (bit 24), as in a container with a reduced bounding set.
fn agent_capabilities() -> Vec<String> {
    process::capabilities_in_mask(0x1ff_feff_ffff)
}

fn spec(c: serde_json::Value) -> Spec {
    spec_with(&pod(json!({})), &container(c), &image()).unwrap()
}

fn args(c: serde_json::Value) -> Vec<String> {
    spec(c).process().as_ref().unwrap().args().clone().unwrap()
}

#[test]
fn command_and_args_against_entrypoint_and_cmd() {
    assert_eq!(args(json!({})), ["/entry", "--cmd"]);
    assert_eq!(
        args(json!({"command": ["/own"]})),
        ["/own"],
        "command drops Cmd too"
    );
    assert_eq!(args(json!({"args": ["a"]})), ["/entry", "a"]);
    assert_eq!(
        args(json!({"command": ["/own"], "args": ["a"]})),
        ["/own", "a"]
    );
    assert_eq!(
        args(
            json!({"command": ["/own", "$(X)", "$$(X)", "$(UNSET)"], "env": [{"name": "X", "value": "x"}]})
        ),
        ["/own", "x", "$(X)", "$(UNSET)"]
    );
    let empty = ImageConfig::default();
    let err = spec_with(&pod(json!({})), &container(json!({})), &empty).unwrap_err();
    assert!(err.contains("no command specified"), "{err}");
}

#[test]
fn environment_is_image_env_then_container_env() {
    let s = spec(json!({"env": [
        {"name": "SHARED", "value": "pod"},
        {"name": "OWN", "value": "$(SHARED)-x"}
    ]}));
    let env = s.process().as_ref().unwrap().env().clone().unwrap();
    assert_eq!(
        env,
        [
            "PATH=/image/bin",
            "HOSTNAME=web-node1",
            "IMG=1",
            "SHARED=pod",
            "OWN=pod-x"
        ]
    );
}

#[test]
fn working_dir_and_user() {
    let s = spec(json!({}));
    let p = s.process().as_ref().unwrap();
    assert_eq!(p.cwd(), Path::new("/image-wd"));
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    assert_eq!(p.no_new_privileges(), None);
    let s =
        spec(json!({"workingDir": "/own", "securityContext": {"allowPrivilegeEscalation": false}}));
    let p = s.process().as_ref().unwrap();
    assert_eq!(p.cwd(), Path::new("/own"));
    assert_eq!(p.no_new_privileges(), Some(true));
}

fn effective(s: &Spec) -> Vec<String> {
    let caps = s
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap();
    let mut names: Vec<String> = caps
        .effective()
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| format!("CAP_{c}"))
        .collect();
    names.sort();
    names
}

#[test]
fn capabilities_default_add_drop_privileged() {
    let s = spec(json!({}));
    assert_eq!(effective(&s).len(), 14);
    assert!(effective(&s).contains(&"CAP_NET_BIND_SERVICE".to_string()));
    let caps = s
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap();
    assert_eq!(caps.bounding(), caps.effective());
    assert!(caps.ambient().is_none());
    let s = spec(
        json!({"securityContext": {"capabilities": {"add": ["NET_ADMIN"], "drop": ["KILL", "CAP_CHOWN"]}}}),
    );
    let names = effective(&s);
    assert!(names.contains(&"CAP_NET_ADMIN".to_string()));
    assert!(!names.contains(&"CAP_KILL".to_string()));
    assert!(!names.contains(&"CAP_CHOWN".to_string()));
    let s = spec(json!({"securityContext": {"capabilities": {"drop": ["ALL"]}}}));
    assert!(effective(&s).is_empty());
    let err = spec_with(
        &pod(json!({})),
        &container(json!({"securityContext": {"capabilities": {"add": ["NOT_A_CAP"]}}})),
        &image(),
    )
    .unwrap_err();
    assert!(err.contains("CAP_NOT_A_CAP"), "{err}");
    let s = spec(json!({"securityContext": {"privileged": true}}));
    let mut agent = agent_capabilities();
    agent.sort();
    assert_eq!(
        effective(&s),
        agent,
        "privileged: the agent's own capabilities"
    );
    assert!(!agent.contains(&"CAP_SYS_RESOURCE".to_string()));
    let s = spec(json!({"securityContext": {"capabilities": {"add": ["ALL"], "drop": ["BPF"]}}}));
    let names = effective(&s);
    assert_eq!(
        names.len(),
        agent.len() - 1,
        "add ALL is the agent's, less the dropped"
    );
    assert!(!names.contains(&"CAP_BPF".to_string()));
    let s = spec(json!({"securityContext": {"privileged": true}}));
    assert!(s.linux().as_ref().unwrap().seccomp().is_none());
    assert!(s.linux().as_ref().unwrap().masked_paths().is_none());
}

fn namespace_paths(s: &Spec) -> Vec<(LinuxNamespaceType, Option<PathBuf>)> {
    s.linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| (n.typ(), n.path().clone()))
        .collect()
}

#[test]
fn namespaces_follow_host_fields() {
    let s = spec(json!({}));
    let ns = namespace_paths(&s);
    assert!(ns.contains(&(LinuxNamespaceType::Pid, None)));
    assert!(ns.contains(&(LinuxNamespaceType::Mount, None)));
    assert!(ns.contains(&(
        LinuxNamespaceType::Network,
        Some("/run/boot/netns/uid".into())
    )));
    assert!(ns.contains(&(
        LinuxNamespaceType::Uts,
        Some("/run/boot/oci/uid/uts".into())
    )));
    assert!(ns.contains(&(
        LinuxNamespaceType::Ipc,
        Some("/run/boot/oci/uid/ipc".into())
    )));
    let host_pid = spec_with(
        &pod(json!({"hostPID": true})),
        &container(json!({})),
        &image(),
    )
    .unwrap();
    assert!(!namespace_paths(&host_pid)
        .iter()
        .any(|(t, _)| *t == LinuxNamespaceType::Pid));
}

fn mount_of<'a>(
    s: &'a Spec,
    destination: &str,
) -> Option<&'a libcontainer::oci_spec::runtime::Mount> {
    s.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new(destination))
}

#[test]
fn default_mounts_injected_files_and_volumes() {
    let s = spec(json!({"volumeMounts": [
        {"name": "certs", "mountPath": "/etc/kubernetes/pki", "readOnly": true},
        {"name": "data", "mountPath": "/var/lib/etcd"}
    ]}));
    for destination in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/etc/hosts",
        "/etc/hostname",
        "/etc/resolv.conf",
        "/dev/termination-log",
    ] {
        assert!(mount_of(&s, destination).is_some(), "{destination} mounted");
    }
    let sys = mount_of(&s, "/sys").unwrap();
    assert!(sys.options().as_ref().unwrap().contains(&"ro".to_string()));
    let certs = mount_of(&s, "/etc/kubernetes/pki").unwrap();
    assert_eq!(
        certs.source().as_deref(),
        Some(Path::new("/etc/kubernetes/pki"))
    );
    assert_eq!(
        certs.options().as_ref().unwrap(),
        &["rbind", "rprivate", "ro"]
    );
    let data = mount_of(&s, "/var/lib/etcd").unwrap();
    assert!(data.options().as_ref().unwrap().contains(&"rw".to_string()));
    assert_eq!(
        mount_of(&s, "/dev/shm").unwrap().source().as_deref(),
        Some(Path::new("/pods/uid/shm"))
    );
}

#[test]
fn a_volume_at_dev_replaces_the_dev_defaults() {
    let s = spec(json!({"volumeMounts": [{"name": "dev", "mountPath": "/dev"}]}));
    assert_eq!(mount_of(&s, "/dev").unwrap().typ().as_deref(), Some("bind"));
    assert!(mount_of(&s, "/dev/pts").is_none());
    assert!(mount_of(&s, "/dev/shm").is_none());
    assert!(mount_of(&s, "/proc").is_some());
}

#[test]
fn bad_volume_mounts_are_refused() {
    let bad = |vm: serde_json::Value| {
        spec_with(
            &pod(json!({})),
            &container(json!({"volumeMounts": [vm]})),
            &image(),
        )
        .unwrap_err()
    };
    assert!(bad(json!({"name": "nope", "mountPath": "/x"})).contains("names no volume"));
    assert!(bad(json!({"name": "data", "mountPath": "relative"})).contains("absolute"));
    assert!(
        bad(json!({"name": "data", "mountPath": "/x", "subPath": "../etc"})).contains("subPath")
    );
}

#[test]
fn masked_and_readonly_paths() {
    let s = spec(json!({}));
    let linux = s.linux().as_ref().unwrap();
    let masked = linux.masked_paths().as_ref().unwrap();
    assert!(masked.contains(&"/proc/kcore".to_string()));
    assert!(masked.contains(&"/sys/devices/system/cpu/cpu0/thermal_throttle".to_string()));
    assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 5);
    let s = spec(json!({"securityContext": {"procMount": "Unmasked"}}));
    assert!(s.linux().as_ref().unwrap().masked_paths().is_none());
}

#[test]
fn seccomp_runtime_default_from_the_pod_and_limits() {
    let p = pod(json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}));
    let c = container(
        json!({"resources": {"limits": {"memory": "64Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}}}),
    );
    let s = spec_with(&p, &c, &image()).unwrap();
    let linux = s.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_some());
    let resources = linux.resources().as_ref().unwrap();
    assert_eq!(resources.memory().as_ref().unwrap().limit(), Some(64 << 20));
    let cpu = resources.cpu().as_ref().unwrap();
    assert_eq!((cpu.quota(), cpu.period()), (Some(50_000), Some(100_000)));
    assert_eq!(cpu.shares(), Some(256));
    let devices = resources.devices().as_ref().unwrap();
    assert!(
        !devices[0].allow(),
        "every device denied unless the runtime allows it"
    );
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new("/boot/poduid/c-0"))
    );
}

#[test]
fn capability_masks_name_the_bits() {
    assert_eq!(
        process::capabilities_in_mask(0b1_0000_0001),
        ["CAP_CHOWN", "CAP_SETPCAP"]
    );
    assert_eq!(
        process::capabilities_in_mask(1 << 40),
        ["CAP_CHECKPOINT_RESTORE"]
    );
    // A capability newer than boot knows is left out, not misnamed.
    assert!(process::capabilities_in_mask(1 << 41).is_empty());
    assert_eq!(process::capabilities_in_mask(u64::MAX).len(), 41);
}
