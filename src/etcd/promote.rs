//! Promoting a learner once it has caught up. etcd refuses the promotion while the learner's log
//! is behind the leader's (`ErrLearnerNotReady`); kubeadm retries it on a fixed interval until a
//! timeout. boot backs off from half a second to five and shows the learner's progress, so a slow
//! catch-up (a big database) is visibly moving rather than silently waiting.

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::client::EtcdClient;
use super::members::{self, MemberId};
use super::EtcdError;

/// kubeadm's `EtcdAPICallRetryInterval` is 500ms; boot starts there.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// The wait before the next attempt: ×1.5 up to [`MAX_RETRY`].
pub fn next_retry(previous: Duration) -> Duration {
    (previous * 3 / 2).min(MAX_RETRY)
}

/// The parts of `/v3/maintenance/status` boot shows.
#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    #[serde(rename = "raftIndex", default, deserialize_with = "uint")]
    pub raft_index: u64,
    #[serde(rename = "raftAppliedIndex", default, deserialize_with = "uint")]
    pub raft_applied_index: u64,
    #[serde(default)]
    pub leader: Option<MemberId>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

fn uint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    MemberId::deserialize(d).map(|id| id.0)
}

/// The status of the member `client` talks to.
pub async fn status(client: &EtcdClient) -> Result<Status, EtcdError> {
    #[derive(serde::Serialize)]
    struct Empty {}
    client.call("/v3/maintenance/status", &Empty {}).await
}

/// Promotes `id` through `cluster` once etcd accepts it, within `timeout`. With `learner` (a
/// client for the learner itself), each refusal reports its applied index against the leader's.
/// A member that is a voter already counts as promoted (a rerun). Returns how long it took.
pub async fn promote_when_ready(
    cluster: &EtcdClient,
    id: MemberId,
    learner: Option<&EtcdClient>,
    timeout: Duration,
    progress: &mut dyn FnMut(String),
) -> Result<Duration, EtcdError> {
    let start = Instant::now();
    let mut wait = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let error = match members::promote(cluster, id).await {
            Ok(()) => return Ok(start.elapsed()),
            Err(e) if e.is_not_a_learner() => return Ok(start.elapsed()),
            Err(e) if e.is_learner_not_ready() => e,
            // A leader election or a member restarting: worth another try, as etcd's clients do.
            Err(e @ EtcdError::Unreachable { .. }) => e,
            Err(e) => return Err(e),
        };
        if start.elapsed() + wait > timeout {
            return Err(EtcdError::NotPromoted {
                member: id,
                after: start.elapsed(),
                attempts,
                last: error.to_string(),
            });
        }
        progress(describe_wait(cluster, learner, attempts, start.elapsed(), &error).await);
        tokio::time::sleep(wait).await;
        wait = next_retry(wait);
    }
}

async fn describe_wait(
    cluster: &EtcdClient,
    learner: Option<&EtcdClient>,
    attempts: u32,
    elapsed: Duration,
    error: &EtcdError,
) -> String {
    let caught_up = match learner {
        Some(learner) => match (status(learner).await, status(cluster).await) {
            (Ok(mine), Ok(leader)) => format!(
                "learner applied index {} of {}",
                mine.raft_applied_index.max(mine.raft_index),
                leader.raft_index
            ),
            (Err(e), _) => format!("learner status: {e}"),
            (_, Err(e)) => format!("cluster status: {e}"),
        },
        None => error.to_string(),
    };
    format!(
        "not promoted yet after {attempts} attempt(s), {:.1}s: {caught_up}",
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_five_seconds() {
        let mut wait = FIRST_RETRY;
        let mut seen = vec![wait];
        for _ in 0..8 {
            wait = next_retry(wait);
            seen.push(wait);
        }
        assert_eq!(seen[1], Duration::from_millis(750));
        assert_eq!(seen[2], Duration::from_millis(1125));
        assert_eq!(*seen.last().unwrap(), MAX_RETRY);
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn status_parses_string_indexes() {
        let s: Status = serde_json::from_str(
            r#"{"header":{},"version":"3.4.23","raftIndex":"120","leader":"42","raftAppliedIndex":"118","isLearner":true}"#,
        )
        .unwrap();
        assert_eq!((s.raft_index, s.raft_applied_index), (120, 118));
        assert_eq!(s.leader, Some(MemberId(42)));
        assert!(s.is_learner);
    }
}
