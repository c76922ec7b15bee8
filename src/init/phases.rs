//! The phases of `boot init`, their names for `--skip-phases` and `boot init phase`, and which
//! rendered files belong to which.

use std::fmt;
use std::str::FromStr;

/// kubeadm's init phases as boot runs them (reference §1; `agent` stands for `kubelet-start`,
/// `post-boot` for the cluster-admins binding and `upload-config`; `upload-certs` and
/// `bootstrap-token` are kubeadm's, in its order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PhaseName {
    Preflight,
    Certs,
    Kubeconfig,
    Etcd,
    ControlPlane,
    Agent,
    WaitControlPlane,
    PostBoot,
    UploadCerts,
    BootstrapToken,
}

pub const ALL: [PhaseName; 10] = [
    PhaseName::Preflight,
    PhaseName::Certs,
    PhaseName::Kubeconfig,
    PhaseName::Etcd,
    PhaseName::ControlPlane,
    PhaseName::Agent,
    PhaseName::WaitControlPlane,
    PhaseName::PostBoot,
    PhaseName::UploadCerts,
    PhaseName::BootstrapToken,
];

impl PhaseName {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseName::Preflight => "preflight",
            PhaseName::Certs => "certs",
            PhaseName::Kubeconfig => "kubeconfig",
            PhaseName::Etcd => "etcd",
            PhaseName::ControlPlane => "control-plane",
            PhaseName::Agent => "agent",
            PhaseName::WaitControlPlane => "wait-control-plane",
            PhaseName::PostBoot => "post-boot",
            PhaseName::UploadCerts => "upload-certs",
            PhaseName::BootstrapToken => "bootstrap-token",
        }
    }
}

impl fmt::Display for PhaseName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PhaseName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        // kubeadm also accepts sub-phase paths such as `certs/all`; the top level decides here.
        let top = s.split('/').next().unwrap_or(s);
        ALL.iter()
            .copied()
            .find(|p| p.as_str() == top)
            .ok_or_else(|| {
                format!(
                    "unknown phase {s:?} (phases: {})",
                    ALL.iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// Parses `--skip-phases` (comma-separated, repeatable) merged with `InitConfiguration.skipPhases`;
/// the flag wins when given, as in kubeadm.
pub fn skipped(flag: &[String], config: &[String]) -> Result<Vec<PhaseName>, String> {
    let source = if flag.is_empty() { config } else { flag };
    source
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_flags_win() {
        for phase in ALL {
            assert_eq!(phase.as_str().parse::<PhaseName>().unwrap(), phase);
        }
        assert_eq!("certs/all".parse::<PhaseName>().unwrap(), PhaseName::Certs);
        assert!("addon"
            .parse::<PhaseName>()
            .unwrap_err()
            .contains("phases: preflight"));
        let config = vec!["post-boot".to_string()];
        assert_eq!(skipped(&[], &config).unwrap(), [PhaseName::PostBoot]);
        assert_eq!(
            skipped(&["preflight,agent".into()], &config).unwrap(),
            [PhaseName::Preflight, PhaseName::Agent]
        );
    }
}
