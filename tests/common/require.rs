//! What a test needs from the machine: root, a tool on PATH, a Debian package's files, the real
//! control-plane binaries.
//!
//! In CI (`CI` set, as `.ci/run` runs) a missing prerequisite fails the test with a message that
//! names it, because `.ci/run` installs everything; elsewhere the test is skipped and says why on
//! stderr. Include with `#[path = "common/require.rs"] mod require;` and write
//! `let Some(etcd) = require::tool("etcd") else { return };`.
//!
//! The real binaries are not a package: a CI run has them only when `../shared/k8s` ships them,
//! so `.ci/run` says which case it is in with `BOOT_REQUIRE_K8S` (see [`k8s_binaries`]).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `true` when `available`; otherwise panics in CI, or prints why the test is skipped.
pub fn prerequisite(what: &str, available: bool) -> bool {
    if available {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required and missing; .ci/run must install it");
    }
    eprintln!("SKIPPED: {what} is missing on this machine (the test fails in CI instead)");
    false
}

/// Running as root (cgroups, namespaces, mounts).
pub fn root(why: &str) -> bool {
    prerequisite(&format!("root ({why})"), nix::unistd::geteuid().is_root())
}

/// The executable `name` on PATH (or at an absolute path).
pub fn tool(name: &str) -> Option<PathBuf> {
    let found = lookup(name);
    let available = found.is_some();
    found.filter(|_| prerequisite(&format!("the tool `{name}`"), available))
}

/// A file a package installs (`/usr/lib/cni/bridge`, …).
pub fn file(path: &str) -> Option<PathBuf> {
    let path = PathBuf::from(path);
    let available = path.exists();
    Some(path).filter(|path| prerequisite(&path.display().to_string(), available))
}

/// The directory of the real control-plane binaries `names`, from `BOOT_K8S_BIN` (a directory
/// `../shared/k8s/unpack DIR` filled). A directory that lacks one of them is an error wherever it
/// is given. Without the variable, the test fails when `BOOT_REQUIRE_K8S` is `1`, skips (loudly)
/// when it is `0`, and otherwise fails in CI like any missing prerequisite: `.ci/run` sets `1`
/// when it unpacked them and `0` only when it has none to unpack, so a CI run that does not say
/// fails rather than skipping in silence.
pub fn k8s_binaries(names: &[&str]) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(K8S_BIN).map(PathBuf::from) {
        for name in names {
            assert!(
                dir.join(name).is_file(),
                "{K8S_BIN}={} has no {name}",
                dir.display()
            );
        }
        return Some(dir);
    }
    let require = std::env::var(REQUIRE_K8S).ok();
    let required = match require.as_deref() {
        Some("1") => true,
        Some("0") => false,
        None => std::env::var_os("CI").is_some(),
        Some(other) => panic!("{REQUIRE_K8S}={other:?}: expected 1 or 0"),
    };
    let what = format!(
        "the real control-plane binaries ({K8S_BIN}: a directory from `../shared/k8s/unpack DIR`)"
    );
    if required {
        panic!(
            "{what} are required and missing; .ci/run sets {REQUIRE_K8S}=0 only when it has none \
             to unpack"
        );
    }
    eprintln!("SKIPPED: {what} are missing; the test against them did not run");
    None
}

/// `BOOT_K8S_BIN` when it is set (benchmarks that fall back to the stand-in); never fails.
pub fn k8s_binaries_if_given() -> Option<PathBuf> {
    std::env::var_os(K8S_BIN).map(PathBuf::from)
}

pub const K8S_BIN: &str = "BOOT_K8S_BIN";
pub const REQUIRE_K8S: &str = "BOOT_REQUIRE_K8S";

fn lookup(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}
