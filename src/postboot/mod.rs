//! Placeholder until the postboot branch lands.
#![allow(dead_code, unused_variables)]
use std::path::Path;
use std::time::Duration;

use crate::config::ClusterConfiguration;

#[derive(Debug, thiserror::Error)]
#[error("post-boot placeholder")]
pub struct PostBootError;

pub async fn run(
    kubernetes_dir: &Path,
    cluster: &ClusterConfiguration,
    timeout: Duration,
) -> Result<Vec<String>, PostBootError> {
    Ok(vec![])
}
