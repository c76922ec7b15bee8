//! kubeadm's `kubelet-start`, with the agent in place of the kubelet (`agent` is its old name):
//! the kubelet's configuration file and the effective configuration the agent reads (recorded in
//! the ledger with how the agent is started, at the run's first write); then the agent, as a
//! systemd unit, a detached daemon or inside this process.

use crate::config::AgentMode;
use crate::controlplane::agent_launch;
use crate::init::context::{would_write, InitContext, InitError};
use crate::phases::{Phase, PhaseFuture};

pub struct KubeletStart;

impl Phase<InitContext> for KubeletStart {
    fn name(&self) -> &'static str {
        "kubelet-start"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["agent"]
    }
    fn summary(&self) -> &'static str {
        "Write the kubelet configuration and start the static pod agent"
    }
    fn dry_run(&self, ctx: &InitContext) -> Vec<String> {
        let files: Vec<_> = [&ctx.rendered.kubelet_file, &ctx.rendered.config_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let mut lines = would_write(&files);
        lines.push(format!(
            "Would start the agent ({:?}): {} {}",
            ctx.mode,
            ctx.request.exe.display(),
            ctx.agent_args.join(" ")
        ));
        lines
    }
    fn run<'a>(&'a self, ctx: &'a mut InitContext) -> PhaseFuture<'a, InitError> {
        Box::pin(async move {
            let (Some(kubelet_file), Some(config_file)) = (
                ctx.rendered.kubelet_file.clone(),
                ctx.rendered.config_file.clone(),
            ) else {
                return Ok(());
            };
            ctx.say(format!(
                "[kubelet-start] Writing kubelet configuration to file {:?}",
                kubelet_file.path.display().to_string()
            ));
            ctx.write(&[config_file, kubelet_file])?;
            ctx.say(format!(
                "[kubelet-start] Starting the static pod agent ({})",
                match ctx.mode {
                    AgentMode::Systemd => "systemd unit boot-agent.service",
                    AgentMode::Foreground => "in the foreground, inside boot init",
                    _ => "detached daemon",
                }
            ));
            start(ctx)
        })
    }
}

fn start(ctx: &mut InitContext) -> Result<(), InitError> {
    let request = &mut ctx.request;
    let (exe, root, args) = (&request.exe, &request.root, &ctx.agent_args);
    match ctx.mode {
        AgentMode::Systemd => agent_launch::start_systemd(exe, root, args)
            .map(|_| ())
            .map_err(InitError::Agent),
        AgentMode::Foreground => {
            let start = request
                .start_foreground
                .as_mut()
                .ok_or(InitError::NoForeground)?;
            let agent = start(&request.cfg, &request.root).map_err(InitError::Foreground)?;
            ctx.foreground = Some(agent);
            Ok(())
        }
        AgentMode::Detach | AgentMode::Auto => agent_launch::start_detached(exe, root, args)
            .map(|_| ())
            .map_err(InitError::Agent),
    }
}
