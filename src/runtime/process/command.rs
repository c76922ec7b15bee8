//! What to execute for a container (pure): `command[0]` looked up in the binary directories, then
//! `PATH`; without a `command`, the binary named by the image's last path component (tag and
//! digest removed); `$(VAR)` references in command and args expanded from the container's `env`
//! as the kubelet does (`$$` escapes); the environment the process gets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Container;

use crate::host::lookup;
use crate::runtime::expansion::expand_references;

pub use crate::host::lookup::DEFAULT_PATH;

/// The program, its arguments and environment for one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    pub program: PathBuf,
    /// argv[0] is the command as written (so `ps` shows `kube-apiserver`, not the full path).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
}

/// Builds the process spec. `is_executable` is the file-system check, passed in to keep this pure.
pub fn process_spec(
    container: &Container,
    bin_dirs: &[PathBuf],
    search_path: &str,
    hostname: &str,
    is_executable: impl Fn(&Path) -> bool,
) -> Result<ProcessSpec, String> {
    let env = environment(container, bin_dirs, search_path, hostname);
    let vars: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let expand = |s: &String| expand_references(s, &vars);
    let mut argv: Vec<String> = container.command.iter().flatten().map(expand).collect();
    if argv.is_empty() {
        let image = container.image.as_deref().unwrap_or_default();
        let binary = image_binary(image).ok_or_else(|| {
            format!("has no command and its image {image:?} names no binary to run; give spec.containers[].command")
        })?;
        argv.push(binary);
    }
    argv.extend(container.args.iter().flatten().map(expand));
    let program =
        resolve_program(&argv[0], bin_dirs, search_path, &is_executable).ok_or_else(|| {
            let dirs: Vec<String> = bin_dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "command {:?} not found in the binary directories [{}] or PATH ({search_path})",
                argv[0],
                dirs.join(", ")
            )
        })?;
    let working_dir = container
        .working_dir
        .as_deref()
        .filter(|d| !d.is_empty())
        .unwrap_or("/");
    Ok(ProcessSpec {
        program,
        argv,
        env,
        working_dir: PathBuf::from(working_dir),
    })
}

/// `registry.k8s.io/etcd:3.5.15-0` → `etcd`; `busybox@sha256:…` → `busybox`.
pub fn image_binary(image: &str) -> Option<String> {
    let without_digest = image.split('@').next().unwrap_or_default();
    let last = without_digest.rsplit('/').next().unwrap_or_default();
    let name = last.split(':').next().unwrap_or_default();
    (!name.is_empty()).then(|| name.to_string())
}

fn resolve_program(
    command: &str,
    bin_dirs: &[PathBuf],
    search_path: &str,
    is_executable: &impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let mut dirs = bin_dirs.to_vec();
    dirs.extend(lookup::path_dirs(search_path));
    lookup::look_path_with(command, &dirs, is_executable)
}

/// A clean environment (the agent's own is not leaked into pods): `PATH` (binary directories
/// first), `HOSTNAME`, `HOME`, then the container's `env` in order.
pub fn environment(
    container: &Container,
    bin_dirs: &[PathBuf],
    search_path: &str,
    hostname: &str,
) -> Vec<(String, String)> {
    let mut path: Vec<String> = bin_dirs.iter().map(|d| d.display().to_string()).collect();
    path.push(search_path.to_string());
    let mut env = vec![
        ("PATH".to_string(), path.join(":")),
        ("HOSTNAME".to_string(), hostname.to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    for var in container.env.iter().flatten() {
        let value = var.value.clone().unwrap_or_default();
        let vars: BTreeMap<&str, &str> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let value = expand_references(&value, &vars);
        env.retain(|(k, _)| k != &var.name);
        env.push((var.name.clone(), value));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(yaml: &str) -> Container {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn resolves_in_bin_dirs_before_path() {
        let c = container("{name: c, command: [etcd, --a], args: [--b]}");
        let exists = |p: &Path| p == Path::new("/opt/bin/etcd") || p == Path::new("/usr/bin/etcd");
        let spec = process_spec(&c, &["/opt/bin".into()], "/usr/bin", "n", exists).unwrap();
        assert_eq!(spec.program, PathBuf::from("/opt/bin/etcd"));
        assert_eq!(spec.argv, ["etcd", "--a", "--b"]);
        assert_eq!(spec.env[0], ("PATH".into(), "/opt/bin:/usr/bin".into()));
        let spec = process_spec(&c, &[], "/usr/bin", "n", exists).unwrap();
        assert_eq!(spec.program, PathBuf::from("/usr/bin/etcd"));
    }

    #[test]
    fn falls_back_to_the_image_name_or_says_what_is_missing() {
        let c =
            container("{name: c, image: 'registry.k8s.io/kube-apiserver:v1.34.2', args: [--x]}");
        let spec = process_spec(&c, &[], "/bin", "n", |p| p.ends_with("kube-apiserver")).unwrap();
        assert_eq!(spec.argv, ["kube-apiserver", "--x"]);
        let err = process_spec(&c, &["/opt".into()], "/bin", "n", |_| false).unwrap_err();
        assert!(
            err.contains("\"kube-apiserver\" not found in the binary directories [/opt]"),
            "{err}"
        );
        let err = process_spec(&container("{name: c}"), &[], "/bin", "n", |_| true).unwrap_err();
        assert!(err.contains("has no command"), "{err}");
        assert_eq!(
            image_binary("busybox@sha256:abc").as_deref(),
            Some("busybox")
        );
        assert_eq!(
            image_binary("localhost:5000/etcd:3.5").as_deref(),
            Some("etcd")
        );
    }

    #[test]
    fn expands_env_references_like_the_kubelet() {
        let c = container(
            "{name: c, command: [sh, '$(A)-$(B)-$$(A)-$(NOPE)'], env: [{name: A, value: x}, {name: B, value: '$(A)y'}]}",
        );
        let spec = process_spec(&c, &[], "/bin", "n", |_| true).unwrap();
        assert_eq!(spec.argv[1], "x-xy-$(A)-$(NOPE)");
        assert!(spec.env.contains(&("B".into(), "xy".into())));
    }
}
