//! The OCI `process` of a container (pure): its arguments from `command`/`args` against the
//! image's `Entrypoint`/`Cmd`, its environment, working directory, user and capabilities, as
//! containerd's CRI plugin builds them (`internal/cri/opts/spec_opts.go`, `pkg/oci/spec.go`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Capabilities, Container};

use crate::runtime::expansion::expand_references;
use crate::runtime::oci::image::ImageConfig;

/// containerd's default `PATH` (`pkg/oci/spec.go` `defaultUnixEnv`).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities containerd gives every unprivileged container (`pkg/oci/spec.go`
/// `defaultUnixCaps`): bounding = permitted = effective.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability the kernel knows, in the order of their numbers.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The process arguments by the Kubernetes rules (reference §3): `command` replaces the image's
/// Entrypoint *and* Cmd, `args` replaces only Cmd. `$(VAR)` references are expanded from the
/// container's `env` as the kubelet does before it calls the runtime.
pub fn args(
    container: &Container,
    image: &ImageConfig,
    vars: &BTreeMap<&str, &str>,
) -> Result<Vec<String>, String> {
    let expand = |list: &Vec<String>| -> Vec<String> {
        list.iter().map(|s| expand_references(s, vars)).collect()
    };
    let command = container.command.as_ref().filter(|c| !c.is_empty());
    let args = container.args.as_ref().filter(|a| !a.is_empty());
    let out = match (command, args) {
        (Some(command), Some(args)) => [expand(command), expand(args)].concat(),
        (Some(command), None) => expand(command),
        (None, Some(args)) => [image.entrypoint.clone(), expand(args)].concat(),
        (None, None) => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    };
    if out.is_empty() || out[0].is_empty() {
        return Err(
            "no command specified: the pod gives no command and the image no Entrypoint or Cmd"
                .into(),
        );
    }
    Ok(out)
}

/// The container's own `env` with `$(VAR)` references to earlier entries expanded, in order (the
/// kubelet's `makeEnvironmentVariables`; `valueFrom` needs the API and is not supported).
pub fn pod_env(container: &Container) -> Result<Vec<(String, String)>, String> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container.env.iter().flatten() {
        if var.value_from.is_some() {
            return Err(format!(
                "env {}: valueFrom is not supported for static pods",
                var.name
            ));
        }
        let vars: BTreeMap<&str, &str> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let value = expand_references(var.value.as_deref().unwrap_or_default(), &vars);
        env.retain(|(k, _)| k != &var.name);
        env.push((var.name.clone(), value));
    }
    Ok(env)
}

/// The environment, later entries replacing earlier ones in place: `PATH`, `HOSTNAME`, the
/// image's `Env`, then the container's `env` (containerd's `WithEnv` order).
pub fn environment(
    hostname: &str,
    image: &ImageConfig,
    pod_env: &[(String, String)],
) -> Vec<String> {
    let mut env: Vec<String> = vec![
        format!("PATH={DEFAULT_PATH}"),
        format!("HOSTNAME={hostname}"),
    ];
    let mut set = |entry: String| {
        let key = entry.split('=').next().unwrap_or_default().to_string();
        match env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(key.as_str()))
        {
            Some(existing) => *existing = entry,
            None => env.push(entry),
        }
    };
    for entry in &image.env {
        if entry.contains('=') {
            set(entry.clone());
        }
    }
    for (k, v) in pod_env {
        set(format!("{k}={v}"));
    }
    env
}

/// `workingDir`, else the image's `WorkingDir`, else `/`.
pub fn working_dir(container: &Container, image: &ImageConfig) -> String {
    container
        .working_dir
        .as_deref()
        .filter(|d| !d.is_empty())
        .or(image.working_dir.as_deref().filter(|d| !d.is_empty()))
        .unwrap_or("/")
        .to_string()
}

/// The names of the capabilities whose bits `mask` sets (a `CapEff:` line of
/// `/proc/<pid>/status`); bits of capabilities newer than [`ALL_CAPABILITIES`] are left out.
pub fn capabilities_in_mask(mask: u64) -> Vec<String> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask >> bit & 1 == 1)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// The capability set: containerd's defaults, then `securityContext.capabilities.add` and `drop`
/// (`ALL` allowed in both; Kubernetes names come without the `CAP_` prefix). `privileged` and
/// `add: [ALL]` grant `current`, the capabilities the agent itself holds, as containerd grants
/// its own (`cap.Current()`): where the agent runs without some capability (in a container, or
/// with a reduced bounding set), the container cannot be given it and creating it would fail.
pub fn capabilities(
    privileged: bool,
    requested: Option<&Capabilities>,
    current: &[String],
) -> Vec<String> {
    if privileged {
        return current.to_vec();
    }
    let name = |c: &String| {
        let upper = c.to_ascii_uppercase();
        if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        }
    };
    let mut caps: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    let add: Vec<String> = requested
        .and_then(|r| r.add.as_ref())
        .into_iter()
        .flatten()
        .map(name)
        .collect();
    let drop: Vec<String> = requested
        .and_then(|r| r.drop.as_ref())
        .into_iter()
        .flatten()
        .map(name)
        .collect();
    if add.iter().any(|c| c == "CAP_ALL") {
        caps = current.to_vec();
    }
    for cap in add.into_iter().filter(|c| c != "CAP_ALL") {
        if !caps.contains(&cap) {
            caps.push(cap);
        }
    }
    if drop.iter().any(|c| c == "CAP_ALL") {
        caps.clear();
    }
    caps.retain(|c| !drop.contains(c));
    caps
}
