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

    /// The sections of flags.txt this component accepts.
    fn sections(self) -> &'static [&'static str] {
        match self {
            Component::ApiServer => &["common", "kube-apiserver"],
            Component::ControllerManager => &["common", "client", "kube-controller-manager"],
            Component::Scheduler => &["common", "client", "kube-scheduler"],
            Component::Generic => &["common", "generic"],
        }
    }

    fn kind_of(self, name: &str) -> Option<FlagKind> {
        let mut section = "";
        for line in ALLOWED_FLAGS.lines().map(str::trim) {
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = header;
                continue;
            }
            if line.starts_with('#') || !self.sections().contains(&section) {
                continue;
            }
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                [flag] if *flag == name => return Some(FlagKind::Value),
                [flag, "bool"] if *flag == name => return Some(FlagKind::Bool),
                _ => {}
            }
        }
        None
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum FlagKind {
    Bool,
    Value,
}

/// The allow-lists, as data: `[section]` headers, one flag per line, `bool` marks booleans.
const ALLOWED_FLAGS: &str = include_str!("flags.txt");

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

    /// kubeadm's rendered commands (reference §4.2, §4.3 with podSubnet set).
    #[test]
    fn kubeadm_apiserver_and_controller_manager_commands_are_accepted() {
        let apiserver = "--advertise-address=10.0.0.1 --allow-privileged=true --authorization-mode=Node,RBAC \
            --client-ca-file=ca.crt --enable-admission-plugins=NodeRestriction --enable-bootstrap-token-auth=true \
            --etcd-cafile=a --etcd-certfile=b --etcd-keyfile=c --etcd-servers=https://127.0.0.1:2379 \
            --kubelet-client-certificate=d --kubelet-client-key=e --kubelet-preferred-address-types=InternalIP \
            --proxy-client-cert-file=f --proxy-client-key-file=g --requestheader-allowed-names=front-proxy-client \
            --requestheader-client-ca-file=h --requestheader-extra-headers-prefix=X-Remote-Extra- \
            --requestheader-group-headers=X-Remote-Group --requestheader-username-headers=X-Remote-User \
            --secure-port=6443 --service-account-issuer=https://kubernetes.default.svc.cluster.local \
            --service-account-key-file=sa.pub --service-account-signing-key-file=sa.key \
            --service-cluster-ip-range=10.96.0.0/12 --tls-cert-file=i --tls-private-key-file=j";
        let words: Vec<&str> = apiserver.split_whitespace().collect();
        run(Component::ApiServer, &words).unwrap();
        let controller_manager = "--authentication-kubeconfig=k --authorization-kubeconfig=k --bind-address=127.0.0.1 \
            --client-ca-file=ca.crt --cluster-name=kubernetes --cluster-signing-cert-file= --cluster-signing-key-file= \
            --controllers=*,bootstrapsigner,tokencleaner --kubeconfig=k --leader-elect=true \
            --requestheader-client-ca-file=h --root-ca-file=ca.crt --service-account-private-key-file=sa.key \
            --use-service-account-credentials=true --allocate-node-cidrs=true --cluster-cidr=10.244.0.0/16 \
            --service-cluster-ip-range=10.96.0.0/12";
        let words: Vec<&str> = controller_manager.split_whitespace().collect();
        let flags = run(Component::ControllerManager, &words).unwrap();
        assert_eq!(flags.path("cluster-signing-cert-file"), None);
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
