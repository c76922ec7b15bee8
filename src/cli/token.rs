//! `boot token create|list|delete`: kubeadm's `token` commands against the API server with the
//! admin kubeconfig (`--kubeconfig`, default `<root>/etc/kubernetes/admin.conf`). `create` also
//! signs `cluster-info` for the new token and `delete` removes its signature.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use k8s_openapi::jiff::Timestamp;

use super::{CliError, ExitCode, GlobalArgs};
use crate::config::GoDuration;
use crate::join::cluster_info;
use crate::join::token::parse_token_id;
use crate::join::token_secret::{expiry, rfc3339, valid_group, DEFAULT_GROUP, KNOWN_USAGES};
use crate::join::{BootstrapToken, CaCertHash, TokenSpec};
use crate::kubeapi::Caller;
use crate::postboot::{self, PostBootError};

/// kubeadm's `kubernetesAPICall` default.
const API_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a bootstrap token on the server and print it.
    Create(CreateArgs),
    /// List the bootstrap tokens on the server.
    List(KubeconfigArg),
    /// Delete bootstrap tokens (by ID or whole token) on the server.
    Delete(DeleteArgs),
}

#[derive(Debug, Args)]
pub struct KubeconfigArg {
    /// The kubeconfig to talk to the cluster with [default: <root>/etc/kubernetes/admin.conf].
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The token ([a-z0-9]{6}.[a-z0-9]{16}); generated when not given.
    pub token: Option<BootstrapToken>,
    /// How long the token is valid; 0 never expires.
    #[arg(long, value_name = "DURATION", default_value = "24h0m0s")]
    pub ttl: GoDuration,
    /// A human-friendly description of the token's use.
    #[arg(long)]
    pub description: Option<String>,
    /// What the token may be used for.
    #[arg(long, value_delimiter = ',', default_value = "signing,authentication")]
    pub usages: Vec<String>,
    /// Extra groups the token authenticates as (system:bootstrappers:…).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_GROUP)]
    pub groups: Vec<String>,
    /// Print the full `kubeadm join` command for a worker instead of only the token.
    #[arg(long)]
    pub print_join_command: bool,
    #[command(flatten)]
    pub kubeconfig: KubeconfigArg,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Token IDs or whole tokens.
    #[arg(required = true)]
    pub tokens: Vec<String>,
    #[command(flatten)]
    pub kubeconfig: KubeconfigArg,
}

pub fn run(command: TokenCommand, global: &GlobalArgs) -> Result<ExitCode, CliError> {
    let root = global.host_root()?;
    let kubeconfig = |arg: &KubeconfigArg| {
        arg.kubeconfig
            .clone()
            .unwrap_or_else(|| root.path("/etc/kubernetes/admin.conf"))
    };
    let runtime = super::async_runtime(0)?;
    runtime.block_on(async {
        match command {
            TokenCommand::Create(args) => create(&args, kubeconfig(&args.kubeconfig)).await,
            TokenCommand::List(args) => list(kubeconfig(&args)).await,
            TokenCommand::Delete(args) => delete(&args, kubeconfig(&args.kubeconfig)).await,
        }
    })
}

fn api_error(e: PostBootError) -> CliError {
    let code = match e {
        PostBootError::TokenExists { .. } | PostBootError::TokenNotFound { .. } => ExitCode::Usage,
        _ => ExitCode::Timeout,
    };
    let hint = e.hint();
    let error = CliError::new(code, e.to_string());
    match hint {
        Some(hint) => error.with_hint(hint),
        None => error,
    }
}

async fn create(args: &CreateArgs, kubeconfig: PathBuf) -> Result<ExitCode, CliError> {
    if let Some(bad) = args
        .usages
        .iter()
        .find(|u| !KNOWN_USAGES.contains(&u.as_str()))
    {
        return Err(CliError::usage(
            format!("--usages: unknown usage {bad:?}"),
            "the usages are signing and authentication",
        ));
    }
    if let Some(bad) = args.groups.iter().find(|g| !valid_group(g)) {
        return Err(CliError::usage(
            format!("--groups: {bad:?} is not a bootstrap group"),
            "groups match system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]",
        ));
    }
    let mut usages = args.usages.clone();
    usages.sort();
    usages.dedup();
    let spec = TokenSpec {
        token: args.token.clone().unwrap_or_else(BootstrapToken::generate),
        description: args.description.clone().filter(|d| !d.is_empty()),
        expires: expiry(args.ttl.0, Timestamp::now()),
        usages,
        groups: args.groups.clone(),
    };
    let caller = Caller::from_file(&kubeconfig, API_TIMEOUT)
        .await
        .map_err(|e| api_error(e.into()))?;
    postboot::tokens::store_token(&caller, &spec, true)
        .await
        .map_err(api_error)?;
    if spec.signs() {
        match postboot::tokens::update_cluster_info(&caller, None, &[&spec.token], &[]).await {
            Ok(_) | Err(PostBootError::NoClusterInfo) => {}
            Err(e) => return Err(api_error(e)),
        }
    }
    if !args.print_join_command {
        println!("{}", spec.token);
        return Ok(ExitCode::Ok);
    }
    let published = postboot::published_kubeconfig(&kubeconfig).map_err(api_error)?;
    let info = cluster_info::parse(&published).map_err(|e| {
        CliError::new(ExitCode::Usage, format!("{}: {e}", kubeconfig.display()))
            .with_hint("the kubeconfig must name the cluster's server and CA")
    })?;
    let hash = info
        .ca_ders()
        .first()
        .and_then(|der| CaCertHash::of(der).ok())
        .ok_or_else(|| {
            CliError::new(
                ExitCode::Usage,
                format!(
                    "{}: the CA certificate does not parse",
                    kubeconfig.display()
                ),
            )
        })?;
    let endpoint = info.server.strip_prefix("https://").unwrap_or(&info.server);
    // kubeadm's exact line (with its trailing space), which scripts parse.
    println!(
        "kubeadm join {endpoint} --token {} --discovery-token-ca-cert-hash {hash} ",
        spec.token
    );
    Ok(ExitCode::Ok)
}

async fn list(kubeconfig: PathBuf) -> Result<ExitCode, CliError> {
    let caller = Caller::from_file(&kubeconfig, API_TIMEOUT)
        .await
        .map_err(|e| api_error(e.into()))?;
    let tokens = postboot::tokens::list_tokens(&caller)
        .await
        .map_err(api_error)?;
    let now = Timestamp::now();
    let mut rows = vec![[
        "TOKEN",
        "TTL",
        "EXPIRES",
        "USAGES",
        "DESCRIPTION",
        "EXTRA GROUPS",
    ]
    .map(String::from)];
    for token in tokens {
        match token {
            Ok(spec) => rows.push(row(&spec, now)),
            Err(e) => eprintln!("[token] WARNING: skipping a bootstrap token Secret: {e}"),
        }
    }
    print!("{}", table(&rows));
    Ok(ExitCode::Ok)
}

/// One line of kubeadm's `token list` table.
fn row(spec: &TokenSpec, now: Timestamp) -> [String; 6] {
    let none = |text: String| {
        if text.is_empty() {
            "<none>".into()
        } else {
            text
        }
    };
    let (ttl, expires) = match spec.expires {
        None => ("<forever>".to_string(), "<never>".to_string()),
        Some(at) => (
            short_human_duration(at.as_second() - now.as_second()),
            rfc3339(at),
        ),
    };
    [
        spec.token.to_string(),
        ttl,
        expires,
        none(spec.usages.join(",")),
        none(spec.description.clone().unwrap_or_default()),
        none(spec.groups.join(",")),
    ]
}

/// apimachinery's `duration.ShortHumanDuration`.
fn short_human_duration(seconds: i64) -> String {
    match seconds {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 60 => format!("{s}s"),
        s if s < 60 * 60 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 365 * 24 * 3600 => format!("{}d", s / (24 * 3600)),
        s => format!("{}y", s / (365 * 24 * 3600)),
    }
}

/// Columns padded as Go's tabwriter with padding 3, as kubeadm prints them.
fn table(rows: &[[String; 6]]) -> String {
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}", width = widths[i] + 3));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

async fn delete(args: &DeleteArgs, kubeconfig: PathBuf) -> Result<ExitCode, CliError> {
    let ids = args
        .tokens
        .iter()
        .map(|t| parse_token_id(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError::usage(e.to_string(), e.hint()))?;
    let caller = Caller::from_file(&kubeconfig, API_TIMEOUT)
        .await
        .map_err(|e| api_error(e.into()))?;
    for id in ids {
        postboot::tokens::delete_token(&caller, &id)
            .await
            .map_err(api_error)?;
        println!("bootstrap token {id:?} deleted");
    }
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_rows_are_kubeadms() {
        let now: Timestamp = "2026-12-01T23:00:00Z".parse().unwrap();
        let token: BootstrapToken = "abcdef.0123456789abcdef".parse().unwrap();
        let spec = TokenSpec::for_nodes(token, Duration::from_secs(24 * 3600 - 30), now);
        let rows = vec![
            [
                "TOKEN",
                "TTL",
                "EXPIRES",
                "USAGES",
                "DESCRIPTION",
                "EXTRA GROUPS",
            ]
            .map(String::from),
            row(&spec, now),
        ];
        assert_eq!(
            table(&rows),
            "TOKEN                     TTL   EXPIRES                USAGES                   DESCRIPTION   EXTRA GROUPS\n\
             abcdef.0123456789abcdef   23h   2026-12-02T22:59:30Z   authentication,signing   <none>        system:bootstrappers:kubeadm:default-node-token\n"
        );
        let forever = TokenSpec::for_nodes(spec.token.clone(), Duration::ZERO, now);
        assert_eq!(row(&forever, now)[1..3], ["<forever>", "<never>"]);
    }

    #[test]
    fn durations_read_as_kubectl_prints_them() {
        assert_eq!(short_human_duration(-5), "<invalid>");
        assert_eq!(short_human_duration(59), "59s");
        assert_eq!(short_human_duration(3599), "59m");
        assert_eq!(short_human_duration(7199), "1h");
        assert_eq!(short_human_duration(47 * 3600), "47h");
        assert_eq!(short_human_duration(72 * 3600), "3d");
    }
}
