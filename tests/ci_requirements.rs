//! When a test that needs the real control-plane binaries (`BOOT_K8S_BIN`) fails instead of
//! skipping: in CI unless the run says it has none (`BOOT_REQUIRE_K8S=0`, which `.ci/run` sets only
//! when it has nothing to unpack), wherever `BOOT_REQUIRE_K8S=1` says they must be there, and
//! whenever `BOOT_K8S_BIN` names a directory without them. Each case runs this test binary again
//! with its own environment, so that a failing lookup fails that child, not this test.

#[path = "common/cluster.rs"]
mod cluster;

use std::path::Path;
use std::process::{Command, Output};

const PROBE: &str = "BOOT_TEST_PROBE_REAL_COMPONENTS";

/// Does nothing unless a case below runs it in a child with [`PROBE`] set.
#[test]
fn probe_real_components() {
    if std::env::var_os(PROBE).is_none() {
        return;
    }
    let found = cluster::real_components();
    println!("found={}", found.is_some());
}

/// Runs [`probe_real_components`] in a child whose environment has none of the variables that
/// matter but `vars`.
fn probe(vars: &[(&str, &str)]) -> Output {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "probe_real_components", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(PROBE, "1")
        .env_remove("CI")
        .env_remove("BOOT_K8S_BIN")
        .env_remove("BOOT_REQUIRE_K8S");
    for (key, value) in vars {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn found(out: &Output) -> Option<bool> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return None;
    }
    Some(stdout.contains("found=true"))
}

fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn missing_real_binaries_fail_in_ci_unless_the_run_says_it_has_none() {
    let ci = probe(&[("CI", "true")]);
    assert_eq!(
        found(&ci),
        None,
        "CI without the binaries: {}",
        describe(&ci)
    );
    assert!(
        describe(&ci).contains("BOOT_K8S_BIN"),
        "the failure names the variable: {}",
        describe(&ci)
    );

    let waived = probe(&[("CI", "true"), ("BOOT_REQUIRE_K8S", "0")]);
    assert_eq!(found(&waived), Some(false), "{}", describe(&waived));
    assert!(
        String::from_utf8_lossy(&waived.stderr).contains("SKIPPED:"),
        "a waived test says that it skipped: {}",
        describe(&waived)
    );

    let required = probe(&[("BOOT_REQUIRE_K8S", "1")]);
    assert_eq!(found(&required), None, "{}", describe(&required));

    let elsewhere = probe(&[]);
    assert_eq!(found(&elsewhere), Some(false), "{}", describe(&elsewhere));
    assert!(String::from_utf8_lossy(&elsewhere.stderr).contains("SKIPPED:"));

    let nonsense = probe(&[("CI", "true"), ("BOOT_REQUIRE_K8S", "maybe")]);
    assert_eq!(found(&nonsense), None, "{}", describe(&nonsense));
}

#[test]
fn a_given_directory_must_hold_the_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().to_str().unwrap();
    let empty = probe(&[("BOOT_K8S_BIN", bin), ("BOOT_REQUIRE_K8S", "0")]);
    assert_eq!(found(&empty), None, "{}", describe(&empty));

    for name in [
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ] {
        std::fs::write(Path::new(bin).join(name), b"").unwrap();
    }
    let complete = probe(&[("BOOT_K8S_BIN", bin), ("CI", "true")]);
    assert_eq!(found(&complete), Some(true), "{}", describe(&complete));
}
