//! What a test needs from the machine: root, a tool on PATH, a Debian package's files.
//!
//! In CI (`CI` set, as `.ci/run` runs) a missing prerequisite fails the test with a message that
//! names it, because `.ci/run` installs everything; elsewhere the test is skipped and says why on
//! stderr. Include with `#[path = "common/require.rs"] mod require;` and write
//! `let Some(etcd) = require::tool("etcd") else { return };`.
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
