//! [`attach`](super::attach) and [`detach`](super::detach) with stand-in plugins that log their
//! calls: the cache ties ADD to CHECK and DEL, a failed ADD is followed by DEL, and what is gone
//! is no error.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::PodSpec;
use serde_json::json;

use super::*;
use crate::runtime::names::{Namespace, PodName, PodUid};
use crate::runtime::PodRef;

/// A plugin logging `<name> <command> <containerID> <prevResult?> <runtimeConfig?>` that fails
/// `fail_on` with CNI error 11 and otherwise answers with a pod interface and address.
fn plugin(dir: &Path, name: &str, fail_on: &str) {
    let body = format!(
        r#"#!/bin/sh
input=$(cat)
prev=$(echo "$input" | grep -c prevResult)
rc=$(echo "$input" | grep -c portMappings)
echo "{name} $CNI_COMMAND $CNI_CONTAINERID prev=$prev ports=$rc" >> {log}
if [ "$CNI_COMMAND" = "{fail_on}" ]; then
  echo '{{"cniVersion":"1.0.0","code":11,"msg":"{name} refuses"}}'; exit 1
fi
echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0","sandbox":"'$CNI_NETNS'"}}],"ips":[{{"address":"10.9.0.5/24","interface":0}}]}}'
"#,
        log = dir.join("calls").display()
    );
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn calls(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
    std::fs::remove_file(dir.join("calls")).ok();
    text.lines().map(str::to_string).collect()
}

struct Setup {
    dir: tempfile::TempDir,
    settings: NetworkSettings,
    spec: PodSpec,
}

fn setup(fail_on: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = HostRoot::under(dir.path().join("root")).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    plugin(&bin, "first", "none");
    plugin(&bin, "second", fail_on);
    let mut settings = NetworkSettings::for_root(&root);
    settings.bin_dirs = vec![bin];
    std::fs::create_dir_all(&settings.conf_dir).unwrap();
    let list = json!({"cniVersion": "1.0.0", "name": "fake", "plugins": [
        {"type": "first"}, {"type": "second", "capabilities": {"portMappings": true}}]});
    std::fs::write(settings.conf_dir.join("10-fake.conflist"), list.to_string()).unwrap();
    let spec = serde_json::from_value(json!({"containers": [{"name": "c",
        "ports": [{"containerPort": 80, "hostPort": 8080}]}]}))
    .unwrap();
    Setup {
        dir,
        settings,
        spec,
    }
}

fn pod<'a>(spec: &'a PodSpec) -> PodRef<'a> {
    // Leaked: the names live as long as the test process, which is all a PodRef needs.
    PodRef {
        uid: Box::leak(Box::new(PodUid::new("uid1").unwrap())),
        namespace: Box::leak(Box::new(Namespace::new("default").unwrap())),
        full_name: Box::leak(Box::new(PodName::new("web-node1").unwrap())),
        spec,
    }
}

#[test]
fn add_is_cached_found_again_with_check_and_deleted_with_its_result() {
    let s = setup("none");
    let netns = s.dir.path().join("netns");
    let bin = &s.settings.bin_dirs[0];
    let attached = attach(&s.settings, pod(&s.spec), &netns).unwrap();
    assert_eq!(attached.pod_ip(), Some("10.9.0.5".parse().unwrap()));
    assert!(
        attached.source.ends_with("10-fake.conflist"),
        "{}",
        attached.source
    );
    assert_eq!(
        calls(bin),
        [
            "first ADD uid1 prev=0 ports=0",
            "second ADD uid1 prev=1 ports=1"
        ]
    );
    // Found again (a restarted agent): CHECK with the cached result, no second ADD.
    let again = attach(&s.settings, pod(&s.spec), &netns).unwrap();
    assert_eq!(again.ips, attached.ips);
    assert_eq!(again.check_error, None);
    assert_eq!(
        calls(bin),
        [
            "first CHECK uid1 prev=1 ports=0",
            "second CHECK uid1 prev=1 ports=1"
        ]
    );
    // The conf dir changes: DEL still uses the configuration ADD used.
    std::fs::remove_file(s.settings.conf_dir.join("10-fake.conflist")).unwrap();
    detach(&s.settings, &attached).unwrap();
    assert_eq!(
        calls(bin),
        [
            "second DEL uid1 prev=1 ports=1",
            "first DEL uid1 prev=1 ports=0"
        ]
    );
    assert!(s.settings.cache().load_all().0.is_empty());
    // Already gone: nothing to do.
    detach(&s.settings, &attached).unwrap();
    assert_eq!(calls(bin), Vec::<String>::new());
}

#[test]
fn a_failed_add_is_followed_by_del_and_caches_nothing() {
    let s = setup("ADD");
    let netns = s.dir.path().join("netns");
    let error = attach(&s.settings, pod(&s.spec), &netns).unwrap_err();
    assert_eq!(
        error.to_string(),
        "network fake: plugin second ADD failed: error 11 (try again later): second refuses"
    );
    assert_eq!(
        calls(&s.settings.bin_dirs[0]),
        [
            "first ADD uid1 prev=0 ports=0",
            "second ADD uid1 prev=1 ports=1",
            "second DEL uid1 prev=0 ports=1",
            "first DEL uid1 prev=0 ports=0"
        ]
    );
    assert!(s.settings.cache().load_all().0.is_empty());
}

#[test]
fn a_failed_check_keeps_the_attachment_and_says_so() {
    let s = setup("CHECK");
    let netns = s.dir.path().join("netns");
    let attached = attach(&s.settings, pod(&s.spec), &netns).unwrap();
    calls(&s.settings.bin_dirs[0]);
    let again = attach(&s.settings, pod(&s.spec), &netns).unwrap();
    assert_eq!(
        again.ips, attached.ips,
        "no new address under a running pod"
    );
    assert!(
        again
            .describe()
            .contains("CHECK failed: network fake: plugin second CHECK failed"),
        "{}",
        again.describe()
    );
    assert_eq!(s.settings.cache().load_all().0.len(), 1);
}

#[test]
fn an_attachment_for_another_namespace_is_deleted_and_made_anew() {
    let s = setup("none");
    let bin = &s.settings.bin_dirs[0];
    attach(&s.settings, pod(&s.spec), &s.dir.path().join("old-netns")).unwrap();
    calls(bin);
    attach(&s.settings, pod(&s.spec), &s.dir.path().join("new-netns")).unwrap();
    assert_eq!(
        calls(bin),
        [
            "second DEL uid1 prev=1 ports=1",
            "first DEL uid1 prev=1 ports=0",
            "first ADD uid1 prev=0 ports=0",
            "second ADD uid1 prev=1 ports=1"
        ]
    );
}

#[test]
fn a_uid_that_is_no_container_id_cannot_reach_a_plugin() {
    // A PodRef carries a validated PodUid: a path-like UID never becomes CNI_CONTAINERID.
    assert!(PodUid::new("../x").is_err());
    assert!(PodUid::new("a/b").is_err());
}
