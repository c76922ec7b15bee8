//! Automatic renewal, run beside the agent (`boot agent`, and the agent `boot init` starts): each
//! leaf certificate is renewed once less than `BootConfiguration.certificates.renewBefore` is left
//! (a third of its validity by default), then the pods that use it are restarted one at a time,
//! exactly as `boot certs renew` does. CAs are never renewed; one with less than 90 days left is a
//! warning. What happened and when the next renewal is due are kept in
//! `<root>/var/lib/boot/certificates.json`, which `boot status` shows.
//!
//! It talks to the agent only through the status socket, as the CLI does: supervision never waits
//! on it, and a renewal that fails is retried at the next check without touching running pods.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::expiry::Standing;
use super::{CertsLayout, ExpirationReport, RenewSettings};

/// Where the renewal state is kept, under the root.
pub const STATE_FILE: &str = "/var/lib/boot/certificates.json";
/// The longest sleep between checks: a clock change or a replaced certificate is noticed within it.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// The shortest: a renewal that keeps failing is not retried in a loop.
const MIN_SLEEP: Duration = Duration::from_secs(10);
/// How long a pod restarted after a renewal may take to be ready again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything the renewal needs, taken from the configuration when the agent starts.
#[derive(Debug, Clone)]
pub struct AutoRenewal {
    pub layout: CertsLayout,
    pub algorithm: crate::pki::KeyAlgorithm,
    pub validity: Duration,
    pub renew_before: Option<Duration>,
    pub manifest_dir: PathBuf,
    pub status_socket: PathBuf,
    /// `<root>/var/lib/boot/certificates.json`.
    pub state_file: PathBuf,
}

/// What the last check found and did, as `boot status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenewalState {
    /// Unix seconds of the last check.
    pub checked_at: i64,
    /// `(name, unix seconds)` of every renewal so far, newest last (at most 50 kept).
    pub renewed: Vec<(String, i64)>,
    /// When the next leaf becomes due; `None` when there is none to watch.
    pub next_due: Option<(String, i64)>,
    pub ca_warnings: Vec<String>,
    pub last_error: Option<String>,
}

/// Which leaves are due now, which is due next, and which CAs to warn about. Pure.
pub fn plan(
    report: &ExpirationReport,
    now: i64,
    renew_before: Option<Duration>,
) -> (Vec<String>, Option<(String, i64)>, Vec<String>) {
    let own = report.certificates.iter().filter(|r| !r.externally_managed);
    let due = own
        .clone()
        .filter(|r| r.leaf_standing(now, renew_before) != Standing::Valid)
        .map(|r| r.name.clone())
        .collect();
    // Due ones count too (at a time already past): a leaf renewed with a validity shorter than
    // the window is due again at once, and must not leave the loop sleeping for MAX_SLEEP.
    let next = own
        .map(|r| {
            let window = renew_before
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or((r.not_after - r.not_before).max(0) / 3);
            (r.name.clone(), r.not_after.saturating_sub(window))
        })
        .min_by_key(|(_, at)| *at);
    let ca_warnings = report
        .certificate_authorities
        .iter()
        .filter(|r| r.ca_standing(now) != Standing::Valid)
        .map(|r| {
            format!(
                "CA {} expires {}; CAs are not renewed automatically",
                r.name,
                super::expiry::expires(r.not_after)
            )
        })
        .collect();
    (due, next, ca_warnings)
}

/// How long to sleep until `next` is due, within [`MIN_SLEEP`, `MAX_SLEEP`].
pub fn sleep_until(next: Option<i64>, now: i64) -> Duration {
    let wanted = next
        .map(|at| Duration::from_secs(u64::try_from(at.saturating_sub(now)).unwrap_or(0)))
        .unwrap_or(MAX_SLEEP);
    wanted.clamp(MIN_SLEEP, MAX_SLEEP)
}

/// One check, and the renewals and restarts it calls for. Blocking.
pub fn check_once(auto: &AutoRenewal, state: &mut RenewalState, log: &mut dyn FnMut(&str)) {
    let now = super::unix(SystemTime::now());
    state.checked_at = now;
    let report = match super::check_expiration(&auto.layout) {
        Ok(report) => report,
        Err(e) => {
            state.last_error = Some(e.to_string());
            return;
        }
    };
    let (due, next, ca_warnings) = plan(&report, now, auto.renew_before);
    state.ca_warnings = ca_warnings;
    state.next_due = next;
    if due.is_empty() {
        state.last_error = None;
        return;
    }
    let result = renew_and_restart(auto, &due, state, log);
    state.last_error = result.err();
    // What was just renewed is due again only after its new validity: look again.
    if let Ok(report) = super::check_expiration(&auto.layout) {
        state.next_due = plan(&report, super::unix(SystemTime::now()), auto.renew_before).1;
    }
}

fn renew_and_restart(
    auto: &AutoRenewal,
    due: &[String],
    state: &mut RenewalState,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let items = super::select(auto.layout.local_etcd, due).map_err(|e| e.to_string())?;
    let settings = RenewSettings {
        algorithm: auto.algorithm,
        validity: auto.validity,
        now: SystemTime::now(),
    };
    let mut changed = Vec::new();
    for item in &items {
        let not_after = super::renew(&auto.layout, item, settings).map_err(|e| e.to_string())?;
        log(&format!(
            "renewed certificate {}, valid until {}",
            item.name(),
            super::expiry::expires(not_after)
        ));
        state
            .renewed
            .push((item.name().to_string(), super::unix(SystemTime::now())));
        changed.push(item.changed_file(&auto.layout));
    }
    let excess = state.renewed.len().saturating_sub(50);
    state.renewed.drain(..excess);
    let manifests = super::read_manifests(&auto.manifest_dir);
    let affected = super::affected_pods(&manifests, &changed);
    super::hot_reload::take_renewed(
        &auto.status_socket,
        &manifests,
        affected,
        &changed,
        RESTART_TIMEOUT,
        log,
    )
    .map_err(|e| e.to_string())
}

/// Reads the state `boot status` shows; `None` when there is none (or it is not boot's).
pub fn read_state(path: &std::path::Path) -> Option<RenewalState> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 1024 * 1024 {
        return None;
    }
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_state(path: &std::path::Path, state: &RenewalState) -> Result<(), String> {
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
    crate::host::write_all(&[crate::host::RenderedFile::new(path, 0o600, bytes)])
        .map_err(|e| e.to_string())
}

/// Checks, renews and sleeps until cancelled (the task is aborted when the agent stops).
pub async fn run(auto: AutoRenewal) {
    let mut state = read_state(&auto.state_file).unwrap_or_default();
    loop {
        let (a, s) = (auto.clone(), state.clone());
        let checked = tokio::task::spawn_blocking(move || {
            let mut state = s;
            check_once(&a, &mut state, &mut |line| println!("[certs] {line}"));
            state
        })
        .await;
        if let Ok(next_state) = checked {
            state = next_state;
            if let Some(error) = &state.last_error {
                eprintln!("[certs] renewal failed, retrying at the next check: {error}");
            }
            if let Err(e) = write_state(&auto.state_file, &state) {
                eprintln!("[certs] cannot record the renewal state: {e}");
            }
        }
        let now = super::unix(SystemTime::now());
        let next = state.next_due.as_ref().map(|(_, at)| *at);
        let pause = if state.last_error.is_some() {
            MIN_SLEEP.max(Duration::from_secs(60))
        } else {
            sleep_until(next, now)
        };
        tokio::time::sleep(pause).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::expiry::CertRow;

    const DAY: i64 = 86_400;

    fn row(name: &str, not_after: i64, external: bool) -> CertRow {
        CertRow {
            name: name.into(),
            not_before: 0,
            not_after,
            authority: "ca".into(),
            externally_managed: external,
        }
    }

    #[test]
    fn due_leaves_next_due_and_ca_warnings() {
        let report = ExpirationReport {
            certificates: vec![
                row("apiserver", 300 * DAY, false),
                row("admin.conf", 30 * DAY, false),
                row("front-proxy-client", 20 * DAY, true),
            ],
            certificate_authorities: vec![CertRow {
                authority: String::new(),
                ..row("ca", 250 * DAY, false)
            }],
            missing: vec![],
        };
        let now = 180 * DAY;
        let (due, next, warnings) = plan(&report, now, None);
        assert_eq!(
            due,
            ["admin.conf"],
            "externally managed leaves are not renewed"
        );
        assert_eq!(
            next,
            Some(("admin.conf".into(), 20 * DAY)),
            "a due leaf is next, at a time already past, so the loop checks again soon"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let only_valid = ExpirationReport {
            certificates: vec![row("apiserver", 300 * DAY, false)],
            certificate_authorities: vec![],
            missing: vec![],
        };
        assert_eq!(
            plan(&only_valid, now, None).1,
            Some(("apiserver".into(), 200 * DAY))
        );
        assert!(warnings[0].starts_with("CA ca expires"));
    }

    #[test]
    fn sleeps_are_bounded() {
        assert_eq!(sleep_until(None, 0), MAX_SLEEP);
        assert_eq!(sleep_until(Some(5), 0), MIN_SLEEP);
        assert_eq!(sleep_until(Some(-50), 0), MIN_SLEEP);
        assert_eq!(sleep_until(Some(600), 0), Duration::from_secs(600));
        assert_eq!(sleep_until(Some(i64::MAX), 0), MAX_SLEEP);
    }

    #[test]
    fn a_check_renews_what_is_due_and_schedules_the_next() {
        use crate::pki::{issue, ExistingPki, KeyAlgorithm, PkiRequest};
        let dir = tempfile::tempdir().unwrap();
        let cert_dir = dir.path().join("pki");
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let mut req = PkiRequest::with_defaults(&cert_dir, "node-a", [127, 0, 0, 1].into());
        req.algorithm = KeyAlgorithm::EcdsaP256;
        req.cert_validity = hours(3);
        // Issued two hours ago: one hour left, inside a two-hour window.
        req.now = SystemTime::now() - hours(2);
        let pki = issue(&req, &ExistingPki::empty()).unwrap();
        crate::host::write_all(&pki.files).unwrap();
        let auto = AutoRenewal {
            layout: CertsLayout {
                cert_dir: cert_dir.clone(),
                kubernetes_dir: dir.path().to_path_buf(),
                local_etcd: true,
            },
            algorithm: KeyAlgorithm::EcdsaP256,
            validity: hours(3),
            renew_before: Some(hours(2)),
            manifest_dir: dir.path().join("manifests"),
            status_socket: dir.path().join("agent.sock"),
            state_file: dir.path().join("certificates.json"),
        };
        let before = std::fs::read(cert_dir.join("apiserver.crt")).unwrap();
        let mut state = RenewalState::default();
        let mut lines = Vec::new();
        check_once(&auto, &mut state, &mut |l| lines.push(l.to_string()));
        assert_eq!(state.last_error, None, "{lines:?}");
        let renewed: Vec<&str> = state.renewed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(renewed.len(), 7, "every leaf of the cert dir: {renewed:?}");
        assert!(renewed.contains(&"apiserver") && renewed.contains(&"etcd-peer"));
        assert_ne!(
            std::fs::read(cert_dir.join("apiserver.crt")).unwrap(),
            before
        );
        let (_, next_at) = state.next_due.clone().expect("a next renewal");
        let in_an_hour = crate::certs::unix(SystemTime::now()) + 3600;
        assert!(
            (next_at - in_an_hour).abs() < 60,
            "{next_at} vs {in_an_hour}"
        );

        // Nothing due any more: a second check renews nothing.
        let mut again = state.clone();
        check_once(&auto, &mut again, &mut |_| {});
        assert_eq!(again.renewed.len(), 7);
    }
}
