//! `boot join`'s discovery and certificate key from its flags and the `JoinConfiguration`,
//! validated as kubeadm's `ValidateDiscovery`: file discovery when a file is given, else token
//! discovery, which needs CA pins unless skipping them is asked for explicitly. Pure, but for a
//! warning on stderr when file discovery makes flags moot.

use super::join::JoinArgs;
use super::CliError;
use crate::config::JoinConfiguration;
use crate::join::{BootstrapToken, CaCertHash, CertificateKey, DiscoveryFile, JoinDiscovery};

/// The flags, with the JoinConfiguration's values where a flag is not given; validated as
/// kubeadm's `ValidateDiscovery`.
pub(super) struct JoinPlan {
    pub discovery: JoinDiscovery,
    pub certificate_key: CertificateKey,
}

impl JoinPlan {
    pub fn parse(args: &JoinArgs, join: &JoinConfiguration) -> Result<JoinPlan, CliError> {
        let control_plane = args.control_plane || join.control_plane.is_some();
        if !control_plane {
            return Err(CliError::usage(
                "boot joins control-plane nodes only (--control-plane)",
                "a worker node runs a kubelet: join it with `kubeadm join` and the same token and CA hash",
            ));
        }
        let discovery = match file_discovery(args, join)? {
            Some(file) => file,
            None => token_discovery(args, join)?,
        };
        let key = args
            .certificate_key
            .clone()
            .or(join.control_plane.as_ref().and_then(|c| c.certificate_key.clone()))
            .ok_or_else(|| {
                CliError::usage(
                    "no --certificate-key: a control-plane node needs the cluster's shared certificates",
                    "`boot init phase upload-certs --upload-certs` on a control-plane node prints a key",
                )
            })?;
        let certificate_key: CertificateKey =
            key.parse().map_err(|e: crate::join::FormatError| {
                CliError::usage(format!("--certificate-key: {e}"), e.hint())
            })?;
        Ok(JoinPlan {
            discovery,
            certificate_key,
        })
    }
}

fn parse_token(flag: &str, value: &str) -> Result<BootstrapToken, CliError> {
    value
        .parse()
        .map_err(|e: crate::join::FormatError| CliError::usage(format!("{flag}: {e}"), e.hint()))
}

/// `--discovery-file` / `discovery.file`, with the TLS bootstrap token if one is given.
fn file_discovery(
    args: &JoinArgs,
    join: &JoinConfiguration,
) -> Result<Option<JoinDiscovery>, CliError> {
    let from_config = join
        .discovery
        .file
        .as_ref()
        .map(|f| f.kube_config_path.clone());
    let Some(value) = args.discovery_file.clone().or(from_config) else {
        return Ok(None);
    };
    if join.discovery.file.is_some() && join.discovery.bootstrap_token.is_some() {
        return Err(CliError::usage(
            "JoinConfiguration.discovery: bootstrapToken and file cannot both be set",
            "keep one of them",
        ));
    }
    if args.endpoint.is_some() || !args.discovery_token_ca_cert_hash.is_empty() {
        eprintln!("[discovery] WARNING: with file discovery the endpoint and --discovery-token-ca-cert-hash are ignored");
    }
    let file = DiscoveryFile::parse(&value)
        .map_err(|e| CliError::usage(format!("--discovery-file: {e}"), e.hint()))?;
    let tls_bootstrap_token = match args
        .tls_bootstrap_token
        .as_ref()
        .or(args.token.as_ref())
        .or(join.discovery.tls_bootstrap_token.as_ref())
    {
        Some(value) => Some(parse_token("--tls-bootstrap-token", value)?),
        None => None,
    };
    Ok(Some(JoinDiscovery::File {
        file,
        tls_bootstrap_token,
    }))
}

/// Bootstrap-token discovery: an endpoint, a token, and CA pins unless skipping them is asked.
fn token_discovery(args: &JoinArgs, join: &JoinConfiguration) -> Result<JoinDiscovery, CliError> {
    let discovery = join.discovery.bootstrap_token.clone().unwrap_or_default();
    let endpoint = args
        .endpoint
        .clone()
        .or(discovery.api_server_endpoint.clone())
        .ok_or_else(|| {
            CliError::usage(
                "no API server endpoint to join",
                "give it as `boot join HOST:PORT …` (or discovery.bootstrapToken.apiServerEndpoint), or use --discovery-file",
            )
        })?;
    let token = args
        .discovery_token
        .clone()
        .or(args.token.clone())
        .or(discovery.token.clone())
        .or(join.discovery.tls_bootstrap_token.clone())
        .ok_or_else(|| {
            CliError::usage(
                "no bootstrap token",
                "give --token (`boot token create` on a control-plane node makes one)",
            )
        })?;
    let token = parse_token("--token", &token)?;
    let hashes = match args.discovery_token_ca_cert_hash.is_empty() {
        true => discovery.ca_cert_hashes.clone(),
        false => args.discovery_token_ca_cert_hash.clone(),
    };
    let skip =
        args.discovery_token_unsafe_skip_ca_verification || discovery.unsafe_skip_ca_verification;
    if hashes.is_empty() && !skip {
        return Err(CliError::usage(
            "using token-based discovery without --discovery-token-ca-cert-hash can be unsafe",
            "give the `sha256:…` hash `boot init` printed, or pass --discovery-token-unsafe-skip-ca-verification (discovery.bootstrapToken.unsafeSkipCAVerification) to trust the CA the endpoint shows",
        ));
    }
    let pins = hashes
        .iter()
        .map(|h| {
            h.parse::<CaCertHash>().map_err(|e| {
                CliError::usage(format!("--discovery-token-ca-cert-hash: {e}"), e.hint())
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(JoinDiscovery::Token {
        endpoint,
        token,
        pins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        join: JoinArgs,
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn plan(flags: &[&str], config: &str) -> Result<JoinPlan, CliError> {
        let mut argv = vec!["boot", "--control-plane", "--certificate-key", KEY];
        argv.extend(flags);
        let args = Cli::try_parse_from(argv).unwrap().join;
        let join: JoinConfiguration = serde_yaml::from_str(config).unwrap();
        JoinPlan::parse(&args, &join)
    }

    #[test]
    fn token_discovery_needs_pins_unless_skipping_them_is_asked() {
        let err = plan(&["10.0.0.1:6443", "--token", TOKEN], "{}")
            .err()
            .unwrap();
        assert!(err.headline.contains("can be unsafe"), "{err}");
        assert!(err
            .hint
            .unwrap()
            .contains("--discovery-token-unsafe-skip-ca-verification"));
        for (flags, config) in [
            (
                &[
                    "10.0.0.1:6443",
                    "--token",
                    TOKEN,
                    "--discovery-token-unsafe-skip-ca-verification",
                ][..],
                "{}",
            ),
            (
                &["10.0.0.1:6443", "--token", TOKEN][..],
                "discovery: {bootstrapToken: {unsafeSkipCAVerification: true}}",
            ),
        ] {
            let Ok(JoinPlan {
                discovery: JoinDiscovery::Token { pins, endpoint, .. },
                ..
            }) = plan(flags, config)
            else {
                panic!("{flags:?} {config}: not token discovery");
            };
            assert!(pins.is_empty());
            assert_eq!(endpoint, "10.0.0.1:6443");
        }
    }

    #[test]
    fn file_discovery_from_the_flag_or_the_configuration() {
        let Ok(JoinPlan {
            discovery:
                JoinDiscovery::File {
                    file,
                    tls_bootstrap_token,
                },
            ..
        }) = plan(&["--discovery-file", "https://h/k", "--token", TOKEN], "{}")
        else {
            panic!("not file discovery");
        };
        assert_eq!(file, DiscoveryFile::Url("https://h/k".into()));
        assert_eq!(tls_bootstrap_token.unwrap().to_string(), TOKEN);

        let config = "discovery: {file: {kubeConfigPath: /etc/kubernetes/discovery.conf}, tlsBootstrapToken: abcdef.0123456789abcdef}";
        let Ok(JoinPlan {
            discovery:
                JoinDiscovery::File {
                    file,
                    tls_bootstrap_token,
                },
            ..
        }) = plan(&[], config)
        else {
            panic!("not file discovery");
        };
        assert_eq!(
            file,
            DiscoveryFile::Path("/etc/kubernetes/discovery.conf".into())
        );
        assert!(tls_bootstrap_token.is_some());

        let both = "discovery: {file: {kubeConfigPath: /x}, bootstrapToken: {token: abcdef.0123456789abcdef}}";
        let err = plan(&[], both).err().unwrap();
        assert!(err.headline.contains("cannot both be set"), "{err}");
        let err = plan(&["--discovery-file", "http://h/k"], "{}")
            .err()
            .unwrap();
        assert!(err.headline.contains("https"), "{err}");
    }
}
