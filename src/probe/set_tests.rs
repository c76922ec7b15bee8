//! The gating of a container's probes, on computed instants (nothing sleeps).

use std::time::{Duration, Instant};

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn tcp(port: u16) -> ProbeAction {
    ProbeAction::TcpSocket {
        host: "127.0.0.1".into(),
        port,
    }
}

/// kubeadm's shapes (reference §4.6): liveness 10/15/8/10, readiness 0/15/3/1, startup 10/15/24/10.
fn kubeadm(initial: u64, timeout: u64, failure: u32, period: u64) -> ProbeSettings {
    ProbeSettings {
        initial_delay: secs(initial),
        timeout: secs(timeout),
        failure_threshold: failure,
        period: secs(period),
        ..ProbeSettings::default()
    }
}

fn apiserver(start: Instant) -> ProbeSet {
    ProbeSet::new(
        start,
        Some((tcp(1), kubeadm(10, 15, 24, 10))),
        Some((tcp(2), kubeadm(10, 15, 8, 10))),
        Some((tcp(3), kubeadm(0, 15, 3, 1))),
    )
}

fn kinds(due: &[DueProbe]) -> Vec<ProbeKind> {
    due.iter().map(|d| d.kind).collect()
}

fn fail(m: &str) -> ProbeResult {
    ProbeResult::Failure(m.into())
}

#[test]
fn without_probes_a_container_is_started_and_ready_at_once() {
    let start = Instant::now();
    let mut set = ProbeSet::new(start, None, None, None);
    assert!(set.started() && set.ready());
    assert_eq!(set.next_due(), None);
    assert!(set.take_due(start + secs(100)).is_empty());
}

#[test]
fn only_the_startup_probe_runs_until_it_succeeds() {
    let start = Instant::now();
    let mut set = apiserver(start);
    assert!(!set.started() && !set.ready());
    assert_eq!(set.next_due(), Some(start + secs(10)));
    assert!(set.take_due(start + secs(9)).is_empty());
    let due = set.take_due(start + secs(10));
    assert_eq!(
        due,
        vec![DueProbe {
            kind: ProbeKind::Startup,
            action: tcp(1),
            timeout: secs(15)
        }]
    );
    assert!(set.record(ProbeKind::Startup, &fail("not yet")).is_empty());
    // Not due again before one period has passed.
    assert!(set.take_due(start + secs(19)).is_empty());
    assert_eq!(set.next_due(), Some(start + secs(20)));
    // Results of probes that are not running are ignored.
    assert!(set.record(ProbeKind::Liveness, &fail("x")).is_empty());

    let now = start + secs(20);
    assert_eq!(kinds(&set.take_due(now)), vec![ProbeKind::Startup]);
    assert_eq!(
        set.record(ProbeKind::Startup, &ProbeResult::Success),
        vec![Verdict::Started]
    );
    assert!(
        set.started() && !set.ready(),
        "ready waits for the readiness probe"
    );

    // Liveness and readiness begin at once (their initial delays have passed); startup never again.
    assert_eq!(
        kinds(&set.take_due(now)),
        vec![ProbeKind::Liveness, ProbeKind::Readiness]
    );
    assert_eq!(
        set.record(ProbeKind::Readiness, &ProbeResult::Success),
        vec![Verdict::Ready]
    );
    assert!(set
        .record(ProbeKind::Liveness, &ProbeResult::Success)
        .is_empty());
    assert!(set.ready());
    assert!(set.record(ProbeKind::Startup, &fail("late")).is_empty());
    assert_eq!(
        kinds(&set.take_due(now + secs(1))),
        vec![ProbeKind::Readiness]
    );
    assert!(set
        .record(ProbeKind::Readiness, &ProbeResult::Success)
        .is_empty());
    assert_eq!(
        kinds(&set.take_due(now + secs(10))),
        vec![ProbeKind::Liveness, ProbeKind::Readiness]
    );
}

#[test]
fn startup_exhaustion_restarts_after_kubeadms_four_minutes() {
    let start = Instant::now();
    let mut set = apiserver(start);
    let mut restart_at = None;
    while let Some(at) = set.next_due() {
        for due in set.take_due(at) {
            let error = "Get \"https://10.0.0.1:6443/livez\": dial tcp 10.0.0.1:6443: connect: connection refused";
            for verdict in set.record(due.kind, &fail(error)) {
                assert!(matches!(verdict, Verdict::Restart { .. }), "{verdict:?}");
                assert_eq!(
                    verdict,
                    Verdict::Restart {
                        reason: format!("Startup probe failed: {error}"),
                        grace_period: None
                    }
                );
                restart_at = Some(at);
            }
        }
        assert!(at < start + secs(1000), "never restarted");
    }
    // initialDelay 10s, then 23 more runs 10s apart: the 24th failure is at 240s.
    assert_eq!(restart_at, Some(start + secs(240)));
    assert!(set.on_hold() && !set.ready());
    assert_eq!(
        set.failing().map(|(k, _, n)| (k, n)),
        Some((ProbeKind::Startup, 24))
    );
}

#[test]
fn liveness_failure_restarts_with_the_probe_grace_period() {
    let start = Instant::now();
    let liveness = ProbeSettings {
        termination_grace_period: Some(secs(7)),
        ..kubeadm(0, 1, 2, 10)
    };
    let mut set = ProbeSet::new(start, None, Some((tcp(2), liveness)), None);
    assert!(set.ready(), "no readiness probe: ready once started");
    assert_eq!(kinds(&set.take_due(start)), vec![ProbeKind::Liveness]);
    assert!(set.record(ProbeKind::Liveness, &fail("one")).is_empty());
    assert!(
        set.ready(),
        "one failure below the threshold changes nothing"
    );
    let verdicts = set.record(
        ProbeKind::Liveness,
        &fail("HTTP probe failed with statuscode: 500"),
    );
    assert_eq!(
        verdicts,
        vec![Verdict::Restart {
            reason: "Liveness probe failed: HTTP probe failed with statuscode: 500".into(),
            grace_period: Some(secs(7)),
        }]
    );
    // On hold until the agent replaces the set for the new container.
    assert!(!set.ready());
    assert_eq!(set.next_due(), None);
    assert!(set.record(ProbeKind::Liveness, &fail("again")).is_empty());
}

#[test]
fn readiness_only_flips_ready() {
    let start = Instant::now();
    let mut set = ProbeSet::new(start, None, None, Some((tcp(3), kubeadm(0, 15, 3, 1))));
    assert!(set.started() && !set.ready());
    assert_eq!(
        set.record(ProbeKind::Readiness, &ProbeResult::Success),
        vec![Verdict::Ready]
    );
    assert!(set.record(ProbeKind::Readiness, &fail("a")).is_empty());
    assert!(set.record(ProbeKind::Readiness, &fail("b")).is_empty());
    assert_eq!(
        set.record(
            ProbeKind::Readiness,
            &fail("HTTP probe failed with statuscode: 500")
        ),
        vec![Verdict::NotReady {
            reason: "Readiness probe failed: HTTP probe failed with statuscode: 500".into()
        }]
    );
    assert!(!set.on_hold(), "readiness never restarts");
    assert_eq!(
        set.failing(),
        Some((
            ProbeKind::Readiness,
            "HTTP probe failed with statuscode: 500",
            3
        ))
    );
    assert_eq!(
        set.record(ProbeKind::Readiness, &ProbeResult::Success),
        vec![Verdict::Ready]
    );
    assert_eq!(set.failing(), None);
}

#[test]
fn termination_stops_liveness_and_startup_but_not_readiness() {
    let start = Instant::now();
    let mut set = apiserver(start);
    set.set_terminating();
    assert!(
        set.take_due(start + secs(100)).is_empty(),
        "startup does not run while terminating"
    );
    assert!(set.record(ProbeKind::Startup, &fail("x")).is_empty());

    let mut set = apiserver(start);
    set.take_due(start + secs(10));
    set.record(ProbeKind::Startup, &ProbeResult::Success);
    set.set_terminating();
    assert_eq!(
        kinds(&set.take_due(start + secs(20))),
        vec![ProbeKind::Readiness]
    );
    for _ in 0..10 {
        assert!(set
            .record(ProbeKind::Liveness, &fail("shutting down"))
            .is_empty());
    }
    assert!(!set.on_hold());
}

#[test]
fn built_from_a_container() {
    let yaml = "name: etcd\nports:\n- name: probe-port\n  containerPort: 2381\n\
                livenessProbe:\n  httpGet: {host: 127.0.0.1, path: /livez, port: probe-port, scheme: HTTP}\n  \
                initialDelaySeconds: 10\n  failureThreshold: 8\n\
                startupProbe:\n  httpGet: {host: 127.0.0.1, path: /readyz, port: probe-port, scheme: HTTP}\n";
    let container: Container = serde_yaml::from_str(yaml).unwrap();
    let start = Instant::now();
    let set = ProbeSet::for_container(&container, "10.0.0.1", start).unwrap();
    assert!(set.tracker(ProbeKind::Readiness).is_none());
    assert_eq!(
        set.tracker(ProbeKind::Liveness)
            .unwrap()
            .settings()
            .failure_threshold,
        8
    );
    assert_eq!(
        set.next_due(),
        Some(start),
        "startup has no initial delay here"
    );

    let bad: Container =
        serde_yaml::from_str("name: etcd\nreadinessProbe:\n  tcpSocket: {port: metrics}\n")
            .unwrap();
    let err = ProbeSet::for_container(&bad, "10.0.0.1", start).unwrap_err();
    assert_eq!(
        err.to_string(),
        "container etcd: tcpSocket.port: port metrics not found in the container's ports"
    );
}

#[test]
fn a_probe_in_flight_is_not_handed_out_again() {
    // kubeadm's readiness probe: period 1s, timeout 15s.
    let start = Instant::now();
    let mut set = ProbeSet::new(start, None, None, Some((tcp(3), kubeadm(0, 15, 3, 1))));
    assert_eq!(kinds(&set.take_due(start)), vec![ProbeKind::Readiness]);
    assert!(set.take_due(start + secs(5)).is_empty(), "still running");
    assert_eq!(set.next_due(), None);
    set.record(ProbeKind::Readiness, &fail("timeout"));
    // The run began 5 periods ago, so the next one is due at once.
    assert_eq!(set.next_due(), Some(start + secs(1)));
    assert_eq!(
        kinds(&set.take_due(start + secs(15))),
        vec![ProbeKind::Readiness]
    );
}

#[test]
fn an_ignored_result_still_ends_the_run() {
    let start = Instant::now();
    let mut set = apiserver(start);
    assert_eq!(
        kinds(&set.take_due(start + secs(10))),
        vec![ProbeKind::Startup]
    );
    set.set_terminating();
    set.record(ProbeKind::Startup, &fail("x"));
    assert!(set.record(ProbeKind::Startup, &fail("x")).is_empty());
    assert_eq!(set.next_due(), None);
}
