//! Placeholder until the preflight branch lands.
#![allow(dead_code, unused_variables)]
use crate::config::Config;
use crate::host::HostRoot;

#[derive(Debug, Default)]
pub struct PreflightReport {
    pub warnings: Vec<String>,
    pub errors: Vec<String>,
}

impl std::fmt::Display for PreflightReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

pub fn run(cfg: &Config, root: &HostRoot, ignored: &[String]) -> PreflightReport {
    PreflightReport::default()
}

pub fn component_ports(cfg: &Config) -> Vec<(String, u16)> {
    vec![]
}
