//! `boot init`'s flags for joining nodes (`--token`, `--token-ttl`, `--upload-certs`,
//! `--certificate-key`, as kubeadm's) and the join commands it prints at the end, as kubeadm's
//! `show-join-command` does.

use clap::Args;
use k8s_openapi::jiff::Timestamp;

use super::CliError;
use crate::config::{Config, GoDuration};
use crate::host::HostRoot;
use crate::init::JoinData;
use crate::join::token_secret::tokens_from_config;
use crate::join::{BootstrapToken, CaCertHash, CertificateKey};

#[derive(Debug, Clone, Default, Args)]
pub struct JoinDataFlags {
    /// The bootstrap token joining nodes use ([a-z0-9]{6}.[a-z0-9]{16}); generated when not
    /// given.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<BootstrapToken>,
    /// How long the bootstrap token is valid; 0 never expires [default: 24h0m0s].
    #[arg(long, value_name = "DURATION")]
    pub token_ttl: Option<GoDuration>,
    /// Upload the control-plane certificates, encrypted, to Secret kube-system/kubeadm-certs
    /// (for `boot join --control-plane`; deleted after two hours).
    #[arg(long)]
    pub upload_certs: bool,
    /// The key (64 hex digits) that encrypts the uploaded certificates; generated when not
    /// given.
    #[arg(long, value_name = "KEY")]
    pub certificate_key: Option<CertificateKey>,
}

/// The tokens and the certificate key from the flags and `InitConfiguration` (the flags win).
pub fn join_data(flags: &JoinDataFlags, cfg: &Config) -> Result<JoinData, CliError> {
    let tokens = tokens_from_config(
        &cfg.init.bootstrap_tokens,
        flags.token.as_ref(),
        flags.token_ttl.map(|d| d.0),
        Timestamp::now(),
    )
    .map_err(|e| {
        CliError::usage(
            e.to_string(),
            "see `boot config print-defaults` for the bootstrapTokens fields",
        )
    })?;
    let certificate_key = match (flags.upload_certs, &flags.certificate_key) {
        (false, _) => None,
        (true, Some(key)) => Some(key.clone()),
        (true, None) => match &cfg.init.certificate_key {
            Some(text) => Some(text.parse().map_err(|e: crate::join::FormatError| {
                CliError::usage(format!("InitConfiguration.certificateKey: {e}"), e.hint())
            })?),
            None => Some(CertificateKey::generate()),
        },
    };
    Ok(JoinData {
        tokens,
        certificate_key,
    })
}

/// kubeadm's closing join instructions: the control-plane command when a
/// `controlPlaneEndpoint` is set (with the certificate key after `--upload-certs`), then the
/// worker command. Nothing when the CA certificate cannot be read (certs were skipped).
pub fn join_commands(cfg: &Config, root: &HostRoot, join: &JoinData) -> Option<String> {
    let token = &join.tokens.first()?.token;
    let ca = std::fs::read(root.path(cfg.cert_dir()).join("ca.crt")).ok()?;
    let hash = CaCertHash::of_pem(&ca).ok()?;
    let url = cfg.control_plane_url();
    let endpoint = url.strip_prefix("https://").unwrap_or(&url);
    let base = format!("{endpoint} --token {token} \\\n\t--discovery-token-ca-cert-hash {hash}");
    let mut text = String::new();
    if cfg.cluster.control_plane_endpoint.is_some() {
        match &join.certificate_key {
            Some(key) => text.push_str(&format!(
                "You can now join any number of control-plane nodes running the following command on each as root:\n\n  \
                 boot join {base} \\\n\t--control-plane --certificate-key {key}\n\n\
                 (`kubeadm join` with the same flags joins a kubeadm node.)\n\n\
                 Please note that the certificate-key gives access to cluster sensitive data, keep it secret!\n\
                 As a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n\
                 \"boot init phase upload-certs --upload-certs\" to reload certs afterward.\n\n"
            )),
            None => text.push_str(&format!(
                "You can now join any number of control-plane nodes by copying certificate authorities\n\
                 and service account keys on each node and then running the following as root:\n\n  \
                 boot join {base} \\\n\t--control-plane\n\n"
            )),
        }
        text.push_str("Then you can join any number of worker nodes by running the following on each as root:\n\n");
    } else {
        text.push_str("Then you can join any number of worker nodes by running the following on each as root:\n\n");
    }
    text.push_str(&format!("kubeadm join {base}\n"));
    Some(text)
}
