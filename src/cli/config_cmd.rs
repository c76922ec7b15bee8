//! `boot config print-defaults` and `boot config validate FILE`.

use std::path::PathBuf;

use clap::Subcommand;

use super::load::{self, ConfigFlags};
use super::{CliError, ExitCode, GlobalArgs};
use crate::config::{BootConfiguration, Config, HostFacts, Overrides};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the defaulted configuration (placeholders for host-specific values, as kubeadm's
    /// `config print init-defaults`).
    PrintDefaults,
    /// Read, default and validate FILE; print warnings; exit non-zero on the first error.
    Validate { file: PathBuf },
}

pub fn run(command: ConfigCommand, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    match command {
        ConfigCommand::PrintDefaults => {
            print!("{}", defaults_yaml());
            Ok(ExitCode::Ok)
        }
        ConfigCommand::Validate { file } => {
            let global = GlobalArgs {
                config: Some(file.clone()),
                ..global.clone()
            };
            let cfg = load::load(&global, &ConfigFlags::default())?;
            load::print_warnings(&cfg.warnings);
            println!(
                "{}: valid (Kubernetes v{}, etcd {}, node {:?}, advertise address {})",
                file.display(),
                cfg.kubernetes_version,
                cfg.etcd_version,
                cfg.node_name,
                cfg.advertise_address
            );
            Ok(ExitCode::Ok)
        }
    }
}

/// kubeadm's static placeholders (`DefaultedStaticInitConfiguration`): node `node`, address 1.2.3.4.
pub fn defaults_yaml() -> String {
    let facts = HostFacts {
        hostname: "node".into(),
        default_address: Some("1.2.3.4".parse().expect("valid")),
        ..Default::default()
    };
    let cfg = Config::build(Default::default(), &Overrides::default(), &facts)
        .expect("defaults are valid");
    let documents = [
        serde_yaml::to_string(&cfg.init),
        serde_yaml::to_string(&cfg.cluster),
        serde_yaml::to_string(&BootConfiguration::default()),
    ];
    documents
        .into_iter()
        .map(|d| d.expect("configuration serializes"))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterConfiguration, InitConfiguration};

    #[test]
    fn printed_defaults_read_back_as_the_same_configuration() {
        let text = defaults_yaml();
        let docs = crate::config::parse("defaults", &text).unwrap();
        let init: InitConfiguration = docs.init.clone().unwrap();
        let cluster: ClusterConfiguration = docs.cluster.clone().unwrap();
        assert_eq!(init.local_api_endpoint.bind_port, 6443);
        assert_eq!(
            cluster.networking.service_subnet.to_string(),
            "10.96.0.0/12"
        );
        assert_eq!(cluster.certificate_validity_period.to_string(), "8760h0m0s");
        assert!(text.contains("kind: BootConfiguration"));
    }
}
