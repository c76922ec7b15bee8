//! When the control plane does not come up: which component, why (its health answer, then the
//! agent's causes from [`PodStatus::container_causes`]: failing probe and its error, back-off and
//! exit code), how often it restarted, its last log lines, and a hint. Pure: it reads the agent's
//! status, the component's health answer and the log text it is given.

use std::fmt;

use super::health::ComponentView;
use crate::agent::status::PodStatus;

/// How many log lines a diagnosis shows.
pub const LOG_LINES: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub component: String,
    /// One line per known cause: the failing probe, the exit, the agent's reason.
    pub causes: Vec<String>,
    pub restarts: u32,
    pub log_path: Option<String>,
    pub log_tail: Vec<String>,
    pub hint: Option<String>,
}

/// Builds the diagnosis of one unhealthy component. `log` is the raw CRI log text (may be empty).
pub fn diagnose(view: &ComponentView, pod: Option<&PodStatus>, log: &str) -> Diagnosis {
    let mut causes = Vec::new();
    if let Some(detail) = &view.detail {
        causes.push(format!("health: {detail}"));
    }
    let container = pod.and_then(|p| p.containers.first());
    // The agent's own causes (the one diagnosis builder): back-off, failing probes, exits.
    causes.extend(pod.map(PodStatus::container_causes).unwrap_or_default());
    if let Some(reason) = pod.and_then(|p| p.reason.as_ref()) {
        if !causes.iter().any(|c| c.contains(reason.as_str())) {
            causes.push(reason.clone());
        }
    }
    if pod.is_none() {
        causes.push(
            "the agent reports no pod for it: is its manifest in the manifest directory?".into(),
        );
    }
    let log_tail = tail(log, LOG_LINES);
    let evidence = causes
        .iter()
        .chain(log_tail.iter())
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    Diagnosis {
        component: view.component.clone(),
        restarts: view.restarts,
        log_path: container.map(|c| c.log_path.display().to_string()),
        hint: hint(&view.component, &evidence),
        causes,
        log_tail,
    }
}

/// The message part of the last `n` CRI log lines (`<time> <stream> <F|P> <message>`).
pub fn tail(log: &str, n: usize) -> Vec<String> {
    let lines: Vec<String> = log
        .lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(_), Some("stdout" | "stderr"), Some("F" | "P"), Some(message)) => {
                    message.to_string()
                }
                _ => line.to_string(),
            }
        })
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// What usually causes such evidence, and what to do about it.
fn hint(component: &str, evidence: &str) -> Option<String> {
    let text = evidence.to_lowercase();
    if text.contains("address already in use") {
        return Some(format!("a port of {component} is in use by another process: `ss -ltnp` shows which; stop it or change the port"));
    }
    if text.contains("unknown flag") || text.contains("flag provided but not defined") {
        return Some(format!(
            "{component} rejects a flag rendered for the configured version: compare `{component} --version` with kubernetesVersion (or BootConfiguration.etcdVersion)"
        ));
    }
    if text.contains("x509") || text.contains("certificate") || text.contains("tls: ") {
        return Some("a certificate does not match: check the files under the certificates directory, or `boot reset` and init again".into());
    }
    if text.contains("not found in") || text.contains("no such file") {
        return Some(format!("the {component} binary or a file it needs is missing: install it into one of BootConfiguration.binDirs"));
    }
    if text.contains("connection refused") {
        return Some(format!("{component} runs but does not listen where its probe looks: check --bind-address/--secure-port and its log"));
    }
    None
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} is not healthy (restarts: {})",
            self.component, self.restarts
        )?;
        for cause in &self.causes {
            writeln!(f, "  {cause}")?;
        }
        if !self.log_tail.is_empty() {
            writeln!(
                f,
                "  last {} log lines ({}):",
                self.log_tail.len(),
                self.log_path.as_deref().unwrap_or("log")
            )?;
            for line in &self.log_tail {
                writeln!(f, "    {line}")?;
            }
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  hint: {hint}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controlplane::health::Phase;

    fn view(detail: &str) -> ComponentView {
        ComponentView {
            component: "kube-apiserver".into(),
            phase: Phase::Starting,
            restarts: 3,
            detail: Some(detail.into()),
        }
    }

    #[test]
    fn tails_cri_logs_and_names_causes() {
        let log = (1..=30)
            .map(|i| format!("2026-01-01T00:00:00.000000000Z stderr F line {i}\n"))
            .collect::<String>();
        let d = diagnose(
            &view("Get \"https://127.0.0.1:6443/readyz\": dial tcp: connect: connection refused"),
            None,
            &log,
        );
        assert_eq!(d.log_tail.len(), LOG_LINES);
        assert_eq!(d.log_tail[0], "line 11");
        assert!(d.causes.iter().any(|c| c.contains("connection refused")));
        assert!(d.hint.as_deref().unwrap().contains("--bind-address"));
        let text = d.to_string();
        assert!(
            text.starts_with("kube-apiserver is not healthy (restarts: 3)"),
            "{text}"
        );
    }

    #[test]
    fn container_causes_are_the_agents_own() {
        let pod: PodStatus = serde_json::from_value(serde_json::json!({
            "name": "kube-apiserver-n", "namespace": "kube-system", "uid": "u",
            "manifest": "/m/a.yaml", "phase": "Running", "terminating": false, "ready": false,
            "network": "host", "restarts": 2, "manifestError": null,
            "reason": "container kube-apiserver: CrashLoopBackOff: back-off 20s, 3.0s left (last: exit code 1)",
            "initContainers": [],
            "containers": [{
                "name": "kube-apiserver",
                "state": {"state": "waiting", "reason": "CrashLoopBackOff", "message": "back-off 20s", "backoffRemainingMs": 3000},
                "ready": false, "started": false, "restartCount": 2,
                "lastState": {"exitCode": 1, "signal": null, "reason": "Error", "message": "exit code 1",
                              "startedAt": "t0", "finishedAt": "t1"},
                "probes": [], "logPath": "/l/0.log"
            }]
        }))
        .unwrap();
        let d = diagnose(&view("connection refused"), Some(&pod), "");
        assert_eq!(
            d.causes,
            [
                "health: connection refused".to_string(),
                "container kube-apiserver: CrashLoopBackOff: back-off 20s, 3.0s left (last: exit code 1)".to_string(),
            ],
            "the pod's reason is the same line, not a second wording"
        );
    }

    #[test]
    fn hints_follow_the_evidence() {
        let in_use = diagnose(
            &view("x"),
            None,
            "2026 stderr F listen tcp :6443: bind: address already in use\n",
        );
        assert!(in_use.hint.unwrap().contains("in use"));
        let flag = diagnose(&view("x"), None, "Error: unknown flag: --foo\n");
        assert!(flag.hint.unwrap().contains("--version"));
        let cert = diagnose(&view("remote error: tls: bad certificate"), None, "");
        assert!(cert.hint.unwrap().contains("certificate"));
    }
}
