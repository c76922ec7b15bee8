//! The iptables nat rules CNI plugins leave, as reset sees and removes them: the chain names the
//! plugins derive per attachment (bridge's masquerade chain, portmap's `CNI-DN-*`), portmap's
//! shared `CNI-HOSTPORT-*` chains, and removing a chain with every jump to it. Through the
//! `iptables` binary the plugins themselves use (nft or legacy, whichever the host selected).
//!
//! Touches: the iptables nat table.

use std::process::Command;

use sha2::{Digest, Sha512};

use super::cache::CachedAttachment;

/// portmap's shared chains (reference §13), which no plugin ever removes.
const HOSTPORT_CHAINS: &[&str] = &[
    "CNI-HOSTPORT-DNAT",
    "CNI-HOSTPORT-SETMARK",
    "CNI-HOSTPORT-MASQ",
];

/// portmap's shared chains when no container's `CNI-DN-*` chain is left to use them.
pub fn unused_hostport_chains() -> Vec<String> {
    let Some(rules) = nat_rules() else {
        return Vec::new();
    };
    if rules.lines().any(|l| l.starts_with("-N CNI-DN-")) {
        return Vec::new();
    }
    HOSTPORT_CHAINS
        .iter()
        .filter(|c| rules.lines().any(|l| l == format!("-N {c}")))
        .map(|c| c.to_string())
        .collect()
}

/// Removes portmap's shared chains (and the jumps to them) once nothing uses them: after reset,
/// boot's hostPorts leave no rule behind. Another CNI user's next ADD recreates them. Returns
/// what was done and what failed, as lines.
pub fn remove_unused_hostport_chains() -> (Vec<String>, Vec<String>) {
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for chain in unused_hostport_chains() {
        match remove_chain(&chain) {
            Ok(()) => done.push(format!(
                "[reset] Removed portmap's unused iptables chain {chain}"
            )),
            Err(e) => failed.push(format!("iptables chain {chain}: {e}")),
        }
    }
    (done, failed)
}

/// The iptables chain names the plugins derive from a network and container (`pkg/utils`
/// `MustFormatChainNameWithPrefix`): `CNI-` + prefix + sha512(name + id) in hex, cut to 28.
pub fn chain_name(attachment: &CachedAttachment, prefix: &str) -> String {
    let digest = Sha512::digest(format!(
        "{}{}",
        attachment.network_name, attachment.container_id
    ));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let mut chain = format!("CNI-{prefix}{hex}");
    chain.truncate(28);
    chain
}

/// The nat table as `iptables -S` prints it; `None` without iptables.
pub fn nat_rules() -> Option<String> {
    let out = Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn iptables(args: &[&str]) -> Result<(), String> {
    let out = Command::new("iptables")
        .args(["-w", "-t", "nat"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Removes a nat chain and the rules that jump to it; nothing when it is not there.
pub fn remove_chain(chain: &str) -> Result<(), String> {
    let Some(rules) = nat_rules() else {
        return Ok(());
    };
    if !rules.lines().any(|l| l == format!("-N {chain}")) {
        return Ok(());
    }
    let jumps_to_chain = |rule: &&str| rule.split_whitespace().rev().take(2).eq([chain, "-j"]);
    for rule in rules.lines().filter(jumps_to_chain) {
        let Some(rest) = rule.strip_prefix("-A ") else {
            continue;
        };
        let mut args = vec!["-D".to_string()];
        args.extend(split_rule(rest));
        iptables(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    }
    iptables(&["-F", chain])?;
    iptables(&["-X", chain])
}

/// Splits an `iptables -S` rule into arguments, honouring the double quotes of comments.
fn split_rule(rule: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = rule.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chain_names_match_the_plugins() {
        let attachment = CachedAttachment {
            kind: super::super::cache::CACHE_KIND.into(),
            container_id: "abc".into(),
            network_name: "boot".into(),
            if_name: "eth0".into(),
            netns: "/x".into(),
            cni_args: String::new(),
            capability_args: Default::default(),
            config: json!({"cniVersion": "1.0.0", "name": "boot",
                "plugins": [{"type": "bridge", "ipMasq": true}]}),
            result: json!({}),
        };
        // `printf bootabc | sha512sum | cut -c1-24`
        let chain = chain_name(&attachment, "");
        assert_eq!(chain, "CNI-31bbf5be91da0460e2cc096d");
        assert_eq!(
            chain_name(&attachment, "DN-"),
            "CNI-DN-31bbf5be91da0460e2cc0"
        );
    }

    #[test]
    fn rules_split_with_quoted_comments() {
        let rule = r#"POSTROUTING -s 10.88.0.2/32 -m comment --comment "name: \"boot\" id: \"abc\"" -j CNI-x"#;
        let args = split_rule(rule);
        assert_eq!(args.len(), 9, "{args:?}");
        assert_eq!(args[6], r#"name: "boot" id: "abc""#);
        assert_eq!(
            split_rule("POSTROUTING -s 10.88.0.2/32 -j CNI-x"),
            ["POSTROUTING", "-s", "10.88.0.2/32", "-j", "CNI-x"]
        );
    }
}
