//! Command-line parsing with the real components' rules (Go's pflag): `--name=value`,
//! `--name value`, boolean flags that never consume the next argument, `-v` as shorthand of
//! `--v`, and `Error: unknown flag: --foo` for anything not on the component's allow-list.
//! The allow-lists hold every flag kubeadm renders (reference §4.2–4.4) plus the common real
//! ones users put in `extraArgs`, so a rendering mistake makes the stand-in exit 1 like the
//! real binary would.

use std::fmt;

/// Which program the stand-in pretends to be, chosen by the basename of argv[0].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    ApiServer,
    ControllerManager,
    Scheduler,
    /// Plain TCP (optionally HTTP) server for agent tests that need many cheap pods.
    Generic,
}

impl Component {
    pub fn from_argv0(argv0: &str) -> Component {
        let base = argv0.rsplit('/').next().unwrap_or(argv0);
        match base {
            "kube-apiserver" => Component::ApiServer,
            "kube-controller-manager" => Component::ControllerManager,
            "kube-scheduler" => Component::Scheduler,
            _ => Component::Generic,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Component::ApiServer => "kube-apiserver",
            Component::ControllerManager => "kube-controller-manager",
            Component::Scheduler => "kube-scheduler",
            Component::Generic => "boot-standin",
        }
    }

    /// The allow-lists of flags that take a value.
    fn value_flags(self) -> &'static [&'static [&'static str]] {
        match self {
            Component::ApiServer => &[COMMON_VALUE_FLAGS, APISERVER_VALUE_FLAGS],
            Component::ControllerManager => &[
                COMMON_VALUE_FLAGS,
                CLIENT_COMPONENT_VALUE_FLAGS,
                CONTROLLER_MANAGER_VALUE_FLAGS,
            ],
            Component::Scheduler => &[
                COMMON_VALUE_FLAGS,
                CLIENT_COMPONENT_VALUE_FLAGS,
                SCHEDULER_VALUE_FLAGS,
            ],
            Component::Generic => &[COMMON_VALUE_FLAGS, &["listen"]],
        }
    }

    /// The allow-lists of boolean flags (`--name` alone means `--name=true`).
    fn bool_flags(self) -> &'static [&'static [&'static str]] {
        match self {
            Component::ApiServer => &[COMMON_BOOL_FLAGS, APISERVER_BOOL_FLAGS],
            Component::ControllerManager => &[COMMON_BOOL_FLAGS, CONTROLLER_MANAGER_BOOL_FLAGS],
            Component::Scheduler => &[COMMON_BOOL_FLAGS, SCHEDULER_BOOL_FLAGS],
            Component::Generic => &[COMMON_BOOL_FLAGS, &["http"]],
        }
    }

    fn kind_of(self, name: &str) -> Option<FlagKind> {
        let listed = |lists: &[&[&str]]| lists.iter().any(|list| list.contains(&name));
        if listed(self.bool_flags()) {
            Some(FlagKind::Bool)
        } else if listed(self.value_flags()) {
            Some(FlagKind::Value)
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    Value,
}

/// Flags every component (and generic mode) accepts: klog, feature gates, serving.
const COMMON_VALUE_FLAGS: &[&str] = &[
    "v",
    "vmodule",
    "feature-gates",
    "log-flush-frequency",
    "logging-format",
    "bind-address",
    "secure-port",
    "cert-dir",
    "tls-cert-file",
    "tls-private-key-file",
    "tls-cipher-suites",
    "tls-min-version",
    "tls-sni-cert-key",
    "http2-max-streams-per-connection",
    "show-hidden-metrics-for-version",
    "client-ca-file",
    "requestheader-allowed-names",
    "requestheader-client-ca-file",
    "requestheader-extra-headers-prefix",
    "requestheader-group-headers",
    "requestheader-username-headers",
    "requestheader-uid-headers",
    "emulated-version",
];

const COMMON_BOOL_FLAGS: &[&str] = &[
    "help",
    "version",
    "profiling",
    "contention-profiling",
    "permit-port-sharing",
    "permit-address-sharing",
    "log-json-split-stream",
    "log-text-split-stream",
];

const APISERVER_VALUE_FLAGS: &[&str] = &[
    "advertise-address",
    "api-audiences",
    "audit-log-batch-buffer-size",
    "audit-log-batch-max-size",
    "audit-log-batch-max-wait",
    "audit-log-compress",
    "audit-log-format",
    "audit-log-maxage",
    "audit-log-maxbackup",
    "audit-log-maxsize",
    "audit-log-mode",
    "audit-log-path",
    "audit-policy-file",
    "audit-webhook-batch-max-size",
    "audit-webhook-config-file",
    "audit-webhook-initial-backoff",
    "audit-webhook-mode",
    "authentication-config",
    "authentication-token-webhook-cache-ttl",
    "authentication-token-webhook-config-file",
    "authorization-config",
    "authorization-mode",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "authorization-webhook-config-file",
    "cloud-provider",
    "cors-allowed-origins",
    "default-not-ready-toleration-seconds",
    "default-unreachable-toleration-seconds",
    "default-watch-cache-size",
    "delete-collection-workers",
    "disable-admission-plugins",
    "egress-selector-config-file",
    "enable-admission-plugins",
    "encryption-provider-config",
    "endpoint-reconciler-type",
    "etcd-cafile",
    "etcd-certfile",
    "etcd-compaction-interval",
    "etcd-count-metric-poll-period",
    "etcd-db-metric-poll-interval",
    "etcd-healthcheck-timeout",
    "etcd-keyfile",
    "etcd-prefix",
    "etcd-readycheck-timeout",
    "etcd-servers",
    "etcd-servers-overrides",
    "event-ttl",
    "external-hostname",
    "goaway-chance",
    "kubelet-certificate-authority",
    "kubelet-client-certificate",
    "kubelet-client-key",
    "kubelet-port",
    "kubelet-preferred-address-types",
    "kubelet-timeout",
    "livez-grace-period",
    "max-connection-bytes-per-sec",
    "max-mutating-requests-inflight",
    "max-requests-inflight",
    "min-request-timeout",
    "oidc-ca-file",
    "oidc-client-id",
    "oidc-groups-claim",
    "oidc-groups-prefix",
    "oidc-issuer-url",
    "oidc-required-claim",
    "oidc-signing-algs",
    "oidc-username-claim",
    "oidc-username-prefix",
    "peer-advertise-ip",
    "peer-advertise-port",
    "peer-ca-file",
    "proxy-client-cert-file",
    "proxy-client-key-file",
    "request-timeout",
    "runtime-config",
    "service-account-issuer",
    "service-account-jwks-uri",
    "service-account-key-file",
    "service-account-max-token-expiration",
    "service-account-signing-key-file",
    "service-cluster-ip-range",
    "service-node-port-range",
    "shutdown-delay-duration",
    "shutdown-watch-termination-grace-period",
    "storage-backend",
    "storage-media-type",
    "strict-transport-security-directives",
    "token-auth-file",
    "tracing-config-file",
    "watch-cache-sizes",
    "admission-control-config-file",
];

const APISERVER_BOOL_FLAGS: &[&str] = &[
    "allow-privileged",
    "anonymous-auth",
    "audit-log-truncate-enabled",
    "enable-aggregator-routing",
    "enable-bootstrap-token-auth",
    "enable-garbage-collector",
    "enable-logs-handler",
    "enable-priority-and-fairness",
    "encryption-provider-config-automatic-reload",
    "service-account-extend-token-expiration",
    "service-account-lookup",
    "shutdown-send-retry-after",
    "watch-cache",
    "authentication-token-webhook",
];

/// Flags of the two components that talk to the API server as clients (leader election,
/// delegated authentication and authorization).
const CLIENT_COMPONENT_VALUE_FLAGS: &[&str] = &[
    "kubeconfig",
    "master",
    "authentication-kubeconfig",
    "authorization-kubeconfig",
    "authentication-token-webhook-cache-ttl",
    "authorization-always-allow-paths",
    "authorization-webhook-cache-authorized-ttl",
    "authorization-webhook-cache-unauthorized-ttl",
    "kube-api-burst",
    "kube-api-content-type",
    "kube-api-qps",
    "leader-elect-lease-duration",
    "leader-elect-renew-deadline",
    "leader-elect-resource-lock",
    "leader-elect-resource-name",
    "leader-elect-resource-namespace",
    "leader-elect-retry-period",
];

const CONTROLLER_MANAGER_VALUE_FLAGS: &[&str] = &[
    "cloud-config",
    "cloud-provider",
    "cluster-cidr",
    "cluster-name",
    "cluster-signing-cert-file",
    "cluster-signing-duration",
    "cluster-signing-key-file",
    "cluster-signing-kube-apiserver-client-cert-file",
    "cluster-signing-kube-apiserver-client-key-file",
    "cluster-signing-kubelet-client-cert-file",
    "cluster-signing-kubelet-client-key-file",
    "cluster-signing-kubelet-serving-cert-file",
    "cluster-signing-kubelet-serving-key-file",
    "cluster-signing-legacy-unknown-cert-file",
    "cluster-signing-legacy-unknown-key-file",
    "concurrent-deployment-syncs",
    "concurrent-endpoint-syncs",
    "concurrent-gc-syncs",
    "concurrent-namespace-syncs",
    "concurrent-replicaset-syncs",
    "concurrent-service-endpoint-syncs",
    "concurrent-serviceaccount-token-syncs",
    "controllers",
    "horizontal-pod-autoscaler-sync-period",
    "large-cluster-size-threshold",
    "min-resync-period",
    "node-cidr-mask-size",
    "node-cidr-mask-size-ipv4",
    "node-cidr-mask-size-ipv6",
    "node-eviction-rate",
    "node-monitor-grace-period",
    "node-monitor-period",
    "node-startup-grace-period",
    "pv-recycler-pod-template-filepath-nfs",
    "root-ca-file",
    "secondary-node-eviction-rate",
    "service-account-private-key-file",
    "service-cluster-ip-range",
    "terminated-pod-gc-threshold",
    "unhealthy-zone-threshold",
];

const CONTROLLER_MANAGER_BOOL_FLAGS: &[&str] = &[
    "leader-elect",
    "allocate-node-cidrs",
    "use-service-account-credentials",
    "configure-cloud-routes",
    "authentication-skip-lookup",
    "authentication-tolerate-lookup-failure",
    "enable-dynamic-provisioning",
    "enable-garbage-collector",
    "enable-hostpath-provisioner",
];

const SCHEDULER_VALUE_FLAGS: &[&str] = &[
    "config",
    "write-config-to",
    "pod-max-in-unschedulable-pods-duration",
];

const SCHEDULER_BOOL_FLAGS: &[&str] = &[
    "leader-elect",
    "authentication-skip-lookup",
    "authentication-tolerate-lookup-failure",
];

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    Run(Flags),
    Version,
    Help,
}

/// The parsed flags; for a repeated flag the last value wins, as with pflag scalars.
#[derive(Debug, Default)]
pub struct Flags {
    values: Vec<(String, String)>,
}

impl Flags {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value, or `None` (kubeadm renders `--cluster-signing-cert-file=` empty in
    /// external-CA mode, which the real binaries treat as unset).
    pub fn path(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn is_true(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| v == "true")
    }
}

/// A command line the real component would reject; `Display` is its message.
#[derive(Debug, PartialEq, Eq)]
pub enum FlagError {
    Unknown(String),
    NeedsArgument(String),
    BadBool { flag: String, value: String },
    Positional(String),
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::Unknown(flag) => write!(f, "unknown flag: {flag}"),
            FlagError::NeedsArgument(flag) => write!(f, "flag needs an argument: {flag}"),
            FlagError::BadBool { flag, value } => write!(
                f,
                "invalid argument \"{value}\" for \"{flag}\" flag: strconv.ParseBool: parsing \"{value}\": invalid syntax"
            ),
            FlagError::Positional(arg) => write!(f, "unexpected argument \"{arg}\": the command does not take any arguments"),
        }
    }
}

/// Parses `args` (without argv[0]) for `component`.
pub fn parse(component: Component, args: &[String]) -> Result<Invocation, FlagError> {
    let mut flags = Flags::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let Some(body) = arg.strip_prefix("--").or_else(|| short(arg)) else {
            return Err(FlagError::Positional(arg.clone()));
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (body.to_string(), None),
        };
        let shown = format!("--{name}");
        let value = match component.kind_of(&name) {
            None => return Err(FlagError::Unknown(shown)),
            Some(FlagKind::Bool) => {
                let value = inline.unwrap_or_else(|| "true".into());
                normalize_bool(&value).ok_or(FlagError::BadBool { flag: shown, value })?
            }
            Some(FlagKind::Value) => match inline {
                Some(v) => v,
                None => rest
                    .next()
                    .cloned()
                    .ok_or(FlagError::NeedsArgument(shown))?,
            },
        };
        flags.values.push((name, value));
    }
    if flags.is_true("help") {
        Ok(Invocation::Help)
    } else if flags.is_true("version") {
        Ok(Invocation::Version)
    } else {
        Ok(Invocation::Run(flags))
    }
}

/// pflag shorthands the components define: `-v` for `--v`, `-h` for `--help`.
fn short(arg: &str) -> Option<&str> {
    match arg {
        "-h" => Some("help"),
        _ if arg == "-v" || arg.starts_with("-v=") => Some(&arg[1..]),
        _ => None,
    }
}

/// Go's `strconv.ParseBool` spellings, normalised to "true"/"false".
fn normalize_bool(value: &str) -> Option<String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some("true".into()),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some("false".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(component: Component, list: &[&str]) -> Result<Flags, FlagError> {
        match parse(component, &args(list))? {
            Invocation::Run(flags) => Ok(flags),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn kubeadm_scheduler_command_is_accepted() {
        let flags = run(
            Component::Scheduler,
            &[
                "--authentication-kubeconfig=/etc/kubernetes/scheduler.conf",
                "--authorization-kubeconfig=/etc/kubernetes/scheduler.conf",
                "--bind-address=127.0.0.1",
                "--kubeconfig=/etc/kubernetes/scheduler.conf",
                "--leader-elect=true",
            ],
        )
        .unwrap();
        assert_eq!(flags.get("bind-address"), Some("127.0.0.1"));
        assert!(flags.is_true("leader-elect"));
    }

    #[test]
    fn unknown_flag_is_rejected_like_pflag() {
        let err = run(Component::Scheduler, &["--etcd-servers=https://x"]).unwrap_err();
        assert_eq!(err.to_string(), "unknown flag: --etcd-servers");
    }

    #[test]
    fn separate_values_and_bare_bools() {
        let flags = run(
            Component::ApiServer,
            &["--secure-port", "7443", "--allow-privileged", "-v=4"],
        )
        .unwrap();
        assert_eq!(flags.get("secure-port"), Some("7443"));
        assert!(flags.is_true("allow-privileged"));
        assert_eq!(flags.get("v"), Some("4"));
    }

    #[test]
    fn missing_argument_bad_bool_and_positional() {
        assert_eq!(
            run(Component::ApiServer, &["--etcd-servers"]).unwrap_err(),
            FlagError::NeedsArgument("--etcd-servers".into())
        );
        assert!(matches!(
            run(Component::ApiServer, &["--profiling=yes"]),
            Err(FlagError::BadBool { .. })
        ));
        assert!(matches!(
            run(Component::Generic, &["extra"]),
            Err(FlagError::Positional(_))
        ));
    }

    #[test]
    fn version_and_component_from_argv0() {
        assert!(matches!(
            parse(Component::ApiServer, &args(&["--version"])),
            Ok(Invocation::Version)
        ));
        assert_eq!(
            Component::from_argv0("/opt/bin/kube-scheduler"),
            Component::Scheduler
        );
        assert_eq!(Component::from_argv0("boot-standin"), Component::Generic);
    }
}
