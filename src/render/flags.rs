//! The components' command lines, exactly as kubeadm builds them (`getAPIServerCommand`,
//! `getControllerManagerCommand`, `getSchedulerCommand`, `getEtcdCommand`; reference §4.2–4.5):
//! defaults, then `extraArgs` replacing every default of the same name, sorted by name then value
//! (`ArgumentsToCommand`).

use std::path::Path;

pub use crate::config::extra_value;
use crate::config::{bracket_host, Arg, Config};
use crate::host::HostRoot;

/// One `--name=value` flag.
pub type Flag = (String, String);

fn flag(name: &str, value: impl Into<String>) -> Flag {
    (name.to_string(), value.into())
}

fn path_str(path: &Path) -> String {
    path.display().to_string()
}

/// `[binary, --a=1, --b=2, …]`: defaults overridden by `extra` (all defaults of a name are
/// replaced by all extra entries of that name), sorted by name, then value.
pub fn command(binary: &str, defaults: Vec<Flag>, extra: &[Arg]) -> Vec<String> {
    let mut flags: Vec<Flag> = defaults
        .into_iter()
        .filter(|(name, _)| !extra.iter().any(|a| &a.name == name))
        .collect();
    flags.extend(extra.iter().map(|a| (a.name.clone(), a.value.clone())));
    flags.sort();
    std::iter::once(binary.to_string())
        .chain(flags.into_iter().map(|(n, v)| format!("--{n}={v}")))
        .collect()
}

/// The rooted host paths the flags refer to.
pub struct Paths {
    pub cert_dir: String,
    pub kubernetes_dir: String,
    /// The host root (`/`, or `--root`): other configured host paths lie beneath it.
    pub root: HostRoot,
}

impl Paths {
    pub fn new(cfg: &Config, root: &HostRoot) -> Self {
        Paths {
            cert_dir: path_str(&root.path(cfg.cert_dir())),
            kubernetes_dir: path_str(&root.path("/etc/kubernetes")),
            root: root.clone(),
        }
    }

    /// A configured host path (e.g. `etcd.external.caFile`) beneath the root, as preflight
    /// checks it and the upload reads it.
    pub fn host(&self, path: &str) -> String {
        path_str(&self.root.path(path))
    }

    fn pki(&self, file: &str) -> String {
        format!("{}/{file}", self.cert_dir)
    }

    fn conf(&self, file: &str) -> String {
        format!("{}/{file}", self.kubernetes_dir)
    }
}

/// `127.0.0.1`, or `::1` when the advertise address is IPv6 (kubeadm's etcd and apiserver flags).
fn loopback(cfg: &Config) -> &'static str {
    if cfg.is_ipv6() {
        "::1"
    } else {
        "127.0.0.1"
    }
}

pub fn kube_apiserver(cfg: &Config, p: &Paths) -> Vec<Flag> {
    let mut flags = vec![
        flag("advertise-address", cfg.advertise_address.to_string()),
        flag("allow-privileged", "true"),
        flag("client-ca-file", p.pki("ca.crt")),
        flag("enable-admission-plugins", "NodeRestriction"),
        flag("enable-bootstrap-token-auth", "true"),
        flag(
            "kubelet-client-certificate",
            p.pki("apiserver-kubelet-client.crt"),
        ),
        flag("kubelet-client-key", p.pki("apiserver-kubelet-client.key")),
        flag(
            "kubelet-preferred-address-types",
            "InternalIP,ExternalIP,Hostname",
        ),
        flag("proxy-client-cert-file", p.pki("front-proxy-client.crt")),
        flag("proxy-client-key-file", p.pki("front-proxy-client.key")),
        flag("requestheader-allowed-names", "front-proxy-client"),
        flag("requestheader-client-ca-file", p.pki("front-proxy-ca.crt")),
        flag("requestheader-extra-headers-prefix", "X-Remote-Extra-"),
        flag("requestheader-group-headers", "X-Remote-Group"),
        flag("requestheader-username-headers", "X-Remote-User"),
        flag("secure-port", cfg.bind_port().to_string()),
        flag(
            "service-account-issuer",
            format!(
                "https://kubernetes.default.svc.{}",
                cfg.cluster.networking.dns_domain
            ),
        ),
        flag("service-account-key-file", p.pki("sa.pub")),
        flag("service-account-signing-key-file", p.pki("sa.key")),
        flag(
            "service-cluster-ip-range",
            cfg.cluster.networking.service_subnet.to_string(),
        ),
        flag("tls-cert-file", p.pki("apiserver.crt")),
        flag("tls-private-key-file", p.pki("apiserver.key")),
    ];
    // kubeadm omits the default authorization mode when the user brings an authorization config.
    if extra_value(&cfg.cluster.api_server.extra_args, "authorization-config").is_none() {
        flags.push(flag("authorization-mode", "Node,RBAC"));
    }
    match (&cfg.cluster.etcd.external, cfg.local_etcd()) {
        (Some(external), _) => {
            flags.push(flag("etcd-servers", external.endpoints.join(",")));
            for (name, file) in [
                ("etcd-cafile", &external.ca_file),
                ("etcd-certfile", &external.cert_file),
                ("etcd-keyfile", &external.key_file),
            ] {
                if !file.is_empty() {
                    flags.push(flag(name, p.host(file)));
                }
            }
        }
        (None, local) => {
            // The apiserver talks to the local member; etcd.local.extraArgs advertise-client-urls
            // overrides the address as in kubeadm.
            let advertised =
                local.and_then(|l| extra_value(&l.extra_args, "advertise-client-urls"));
            let servers = advertised
                .map(str::to_string)
                .unwrap_or_else(|| format!("https://{}:2379", bracket_host(loopback(cfg))));
            flags.push(flag("etcd-servers", servers));
            flags.push(flag("etcd-cafile", p.pki("etcd/ca.crt")));
            flags.push(flag("etcd-certfile", p.pki("apiserver-etcd-client.crt")));
            flags.push(flag("etcd-keyfile", p.pki("apiserver-etcd-client.key")));
        }
    }
    flags
}

pub fn kube_controller_manager(cfg: &Config, p: &Paths, external_ca: bool) -> Vec<Flag> {
    let kubeconfig = p.conf("controller-manager.conf");
    let signing = |file: &str| {
        if external_ca {
            String::new()
        } else {
            p.pki(file)
        }
    };
    let mut flags = vec![
        flag("authentication-kubeconfig", kubeconfig.clone()),
        flag("authorization-kubeconfig", kubeconfig.clone()),
        flag("bind-address", "127.0.0.1"),
        flag("client-ca-file", p.pki("ca.crt")),
        flag("cluster-name", cfg.cluster.cluster_name.clone()),
        flag("cluster-signing-cert-file", signing("ca.crt")),
        flag("cluster-signing-key-file", signing("ca.key")),
        flag("controllers", "*,bootstrapsigner,tokencleaner"),
        flag("kubeconfig", kubeconfig),
        flag("leader-elect", "true"),
        flag("requestheader-client-ca-file", p.pki("front-proxy-ca.crt")),
        flag("root-ca-file", p.pki("ca.crt")),
        flag("service-account-private-key-file", p.pki("sa.key")),
        flag("use-service-account-credentials", "true"),
    ];
    if let Some(pods) = &cfg.cluster.networking.pod_subnet {
        flags.push(flag("allocate-node-cidrs", "true"));
        flags.push(flag("cluster-cidr", pods.to_string()));
        flags.push(flag(
            "service-cluster-ip-range",
            cfg.cluster.networking.service_subnet.to_string(),
        ));
    }
    flags
}

pub fn kube_scheduler(p: &Paths) -> Vec<Flag> {
    let kubeconfig = p.conf("scheduler.conf");
    vec![
        flag("authentication-kubeconfig", kubeconfig.clone()),
        flag("authorization-kubeconfig", kubeconfig.clone()),
        flag("bind-address", "127.0.0.1"),
        flag("kubeconfig", kubeconfig),
        flag("leader-elect", "true"),
    ]
}

/// etcd's flags. etcd ≥ 3.6 renamed two experimental flags (kubeadm PR k/k#132838); boot decides
/// by the etcd version it renders for, since that is what the binary accepts.
pub fn etcd(cfg: &Config, p: &Paths, data_dir: &str) -> Vec<Flag> {
    let address = bracket_host(&cfg.advertise_address.to_string());
    let lo = bracket_host(loopback(cfg));
    let etcd_pki = |file: &str| p.pki(&format!("etcd/{file}"));
    let mut flags = vec![
        flag("advertise-client-urls", format!("https://{address}:2379")),
        flag("cert-file", etcd_pki("server.crt")),
        flag("client-cert-auth", "true"),
        flag("data-dir", data_dir),
        flag(
            "initial-advertise-peer-urls",
            format!("https://{address}:2380"),
        ),
        flag(
            "initial-cluster",
            format!("{}=https://{address}:2380", cfg.node_name),
        ),
        flag("key-file", etcd_pki("server.key")),
        flag(
            "listen-client-urls",
            format!("https://{lo}:2379,https://{address}:2379"),
        ),
        flag("listen-metrics-urls", format!("http://{lo}:2381")),
        flag("listen-peer-urls", format!("https://{address}:2380")),
        flag("name", cfg.node_name.clone()),
        flag("peer-cert-file", etcd_pki("peer.crt")),
        flag("peer-client-cert-auth", "true"),
        flag("peer-key-file", etcd_pki("peer.key")),
        flag("peer-trusted-ca-file", etcd_pki("ca.crt")),
        flag("snapshot-count", "10000"),
        flag("trusted-ca-file", etcd_pki("ca.crt")),
    ];
    if cfg.etcd_version.at_least(3, 6, 0) {
        flags.push(flag("feature-gates", "InitialCorruptCheck=true"));
        flags.push(flag("watch-progress-notify-interval", "5s"));
    } else {
        flags.push(flag("experimental-initial-corrupt-check", "true"));
        flags.push(flag("experimental-watch-progress-notify-interval", "5s"));
    }
    flags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_args_replace_all_defaults_of_a_name_and_sort() {
        let defaults = vec![flag("b", "1"), flag("a", "2"), flag("b", "0")];
        let extra = [
            Arg {
                name: "b".into(),
                value: "9".into(),
            },
            Arg {
                name: "c".into(),
                value: "".into(),
            },
        ];
        assert_eq!(
            command("x", defaults, &extra),
            ["x", "--a=2", "--b=9", "--c="]
        );
        let dupes = [
            Arg {
                name: "z".into(),
                value: "2".into(),
            },
            Arg {
                name: "z".into(),
                value: "1".into(),
            },
        ];
        assert_eq!(command("x", vec![], &dupes), ["x", "--z=1", "--z=2"]);
    }
}
