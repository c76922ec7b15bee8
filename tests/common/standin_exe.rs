//! Where the stand-in binary is: `boot-standin`, the test tool in `tests/standin` (its own
//! `publish = false` package in this workspace, so that `cargo install` never installs it).
//!
//! `CARGO_BIN_EXE_*` only names binaries of the test's own package, so the first call in a test
//! process runs `cargo build --bin boot-standin` with the same cargo, target directory and
//! profile as `boot`, and returns the binary beside `boot`. That is a no-op when `cargo test
//! --all-targets` at the root built it, and a rebuild of the stand-in alone after `--test X`. The
//! workspace's default members are both packages, so the features of shared dependencies resolve
//! as in `cargo test` and nothing else is rebuilt (`-p boot-standin` alone would resolve fewer
//! features and rebuild half of the dependencies).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built `boot-standin`; panics with cargo's output when it cannot be built.
pub fn standin_exe() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(build)
}

fn build() -> PathBuf {
    let boot = Path::new(env!("CARGO_BIN_EXE_boot"));
    let profile_dir = boot.parent().expect("boot is in a profile directory");
    let target_dir = profile_dir
        .parent()
        .expect("the profile is in a target directory");
    // Cargo names the dev and test profiles' directory `debug`; every other profile by its name.
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO")
        .or_else(|| option_env!("CARGO").map(Into::into))
        .unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args([
            "build",
            "--quiet",
            "--bin",
            "boot-standin",
            "--profile",
            profile,
        ])
        .arg("--manifest-path")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir);
    // What cargo set for this test process is not the user's environment: build scripts that
    // watch such a variable (ring's watch CARGO_PKG_NAME, …) would rerun, and their dependants
    // rebuild, here and again in the next `cargo test`.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_EXE_")
            || name.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref())
            || ["CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {cargo:?} to build boot-standin: {e}"));
    assert!(
        out.status.success(),
        "cargo build --bin boot-standin failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = profile_dir.join("boot-standin");
    assert!(exe.is_file(), "{} was not built", exe.display());
    exe
}
