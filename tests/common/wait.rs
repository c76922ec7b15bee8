//! The one way tests wait: poll a condition until it holds, and once its deadline has passed panic
//! saying what was awaited and what was found. Never a fixed sleep. Include with
//! `#[path = "common/wait.rs"] mod wait;` (`cluster`, `agent_support`, `images_support`,
//! `oci_support` and the stand-in's testkit bring it along).
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`wait_for`] polls: often enough that a wait adds little to what it measures, rarely
/// enough that a cheap condition costs nothing on a loaded machine.
pub const EVERY: Duration = Duration::from_millis(20);

/// Calls `check` every `every` until it gives a value; once `limit` has passed, panics with
/// `failure()`, called only then so that it can describe the state it finds.
pub fn poll_until<T>(
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
    failure: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("{}", failure());
        }
        std::thread::sleep(every);
    }
}

/// Polls `condition` every [`EVERY`] until it holds; panics naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    poll_until(
        limit,
        EVERY,
        || condition().then_some(()),
        || format!("timed out after {limit:?} waiting for {what}"),
    )
}

/// [`poll_until`] for a check that is itself asynchronous, on a tokio runtime.
pub async fn poll_until_async<T, F: Future<Output = Option<T>>>(
    limit: Duration,
    every: Duration,
    mut check: impl FnMut() -> F,
    failure: impl FnOnce() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("{}", failure());
        }
        tokio::time::sleep(every).await;
    }
}

/// [`wait_for`] on a tokio runtime: polls `condition` every [`EVERY`] without blocking the
/// runtime's threads.
pub async fn wait_for_async(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    poll_until_async(
        limit,
        EVERY,
        || std::future::ready(condition().then_some(())),
        || format!("timed out after {limit:?} waiting for {what}"),
    )
    .await
}
