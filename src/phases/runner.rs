//! Selecting, running, describing and timing an ordered list of phases.

use std::fmt;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// What a phase's `run` returns: a boxed future, so that phases of one workflow can sit in one
/// list as trait objects.
pub type PhaseFuture<'a, E> = Pin<Box<dyn Future<Output = Result<(), E>> + 'a>>;

/// The context a workflow's phases share: what earlier phases found or made for later ones, and
/// where progress lines go.
pub trait Workflow {
    /// The workflow's own error type; the runner wraps it in [`Failed`] with the phase's name.
    type Error;
    /// Where phases and the runner write their `[phase] …` lines.
    fn out(&mut self) -> &mut dyn Write;
}

/// One unit of an orchestration, as kubeadm's `workflow.Phase`.
pub trait Phase<C: Workflow> {
    /// The name `--skip-phases` and `phase NAME` use: `certs`, `addon/coredns`.
    fn name(&self) -> &'static str;
    /// One line for `phase --help` and the plan.
    fn summary(&self) -> &'static str;
    /// Older names users may still give for this phase (`agent` for `kubelet-start`). An alias
    /// several phases share names them all (`post-boot`: `upload-config` and
    /// `mark-control-plane`).
    fn aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// A phase that only reads (preflight) runs for real in a dry run, as kubeadm's does, so a
    /// dry run fails where the run would; every other phase is described instead.
    fn runs_in_dry_run(&self) -> bool {
        false
    }
    /// What a dry run prints instead of running (without the `[dry-run]` prefix). The default is
    /// the summary.
    fn dry_run(&self, ctx: &C) -> Vec<String> {
        let _ = ctx;
        vec![self.summary().to_string()]
    }
    /// Does the phase's work.
    fn run<'a>(&'a self, ctx: &'a mut C) -> PhaseFuture<'a, C::Error>;
}

/// Which phases of a list run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every phase but these (and their children).
    Skip(Vec<String>),
    /// These phases alone (and their children): `boot init phase NAME` (several for an alias).
    Only(Vec<String>),
}

/// A phase name that names no phase of the list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown phase {name:?} (phases: {known})")]
pub struct SelectionError {
    pub name: String,
    pub known: String,
}

impl Selection {
    /// Every phase.
    pub fn all() -> Selection {
        Selection::Skip(Vec::new())
    }

    /// `--skip-phases` (comma-separated, repeatable) over the configuration's `skipPhases`: the
    /// flag wins when given, as in kubeadm. Every name must be a phase of `phases`, a parent of
    /// some (`addon`) or an alias, with kubeadm's `X/all` meaning `X`.
    pub fn skip<C: Workflow>(
        flag: &[String],
        config: &[String],
        phases: &[&dyn Phase<C>],
    ) -> Result<Selection, SelectionError> {
        let source = if flag.is_empty() { config } else { flag };
        let mut names = Vec::new();
        for name in source
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            names.extend(known(name, phases)?);
        }
        Ok(Selection::Skip(names))
    }

    /// `phase NAME`: that phase, all the children of a parent, or the phases of an alias.
    pub fn only<C: Workflow>(
        name: &str,
        phases: &[&dyn Phase<C>],
    ) -> Result<Selection, SelectionError> {
        known(name, phases).map(Selection::Only)
    }

    /// Whether the phase called `name` runs.
    pub fn selects(&self, name: &str) -> bool {
        match self {
            Selection::Skip(skipped) => !skipped.iter().any(|s| covers(s, name)),
            Selection::Only(only) => only.iter().any(|o| covers(o, name)),
        }
    }
}

/// `parent` is `name` or one of its ancestors (`addon` covers `addon/coredns`).
fn covers(parent: &str, name: &str) -> bool {
    name == parent
        || name
            .strip_prefix(parent)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The canonical names a phase name given on the command line stands for (one, or the phases
/// of an alias), or why it names nothing.
fn known<C: Workflow>(name: &str, phases: &[&dyn Phase<C>]) -> Result<Vec<String>, SelectionError> {
    let name = name.strip_suffix("/all").unwrap_or(name);
    if phases.iter().any(|p| covers(name, p.name())) {
        return Ok(vec![name.to_string()]);
    }
    let aliased: Vec<String> = phases
        .iter()
        .filter(|p| p.aliases().contains(&name))
        .map(|p| p.name().to_string())
        .collect();
    if !aliased.is_empty() {
        return Ok(aliased);
    }
    Err(SelectionError {
        name: name.to_string(),
        known: names(phases).join(", "),
    })
}

/// The names of a phase list, parents first where they are not phases themselves: what
/// `phase --help` lists.
pub fn names<C: Workflow>(phases: &[&dyn Phase<C>]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for phase in phases {
        let name = phase.name();
        if let Some((parent, _)) = name.split_once('/') {
            if !out.iter().any(|n| n == parent) {
                out.push(parent.to_string());
            }
        }
        out.push(name.to_string());
    }
    out
}

/// A phase's error, with the phase it came from.
#[derive(Debug)]
pub struct Failed<E> {
    pub phase: &'static str,
    pub error: E,
    /// What ran before the failure.
    pub report: Report,
}

impl<E: fmt::Display> fmt::Display for Failed<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "phase {}: {}", self.phase, self.error)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Failed<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// What a run did: each phase that ran with how long it took, and the phases it skipped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub ran: Vec<(&'static str, Duration)>,
    pub skipped: Vec<&'static str>,
}

impl Report {
    /// `preflight 0.04s, certs 0.41s, …`: the runner's timing line.
    pub fn timings(&self) -> String {
        self.ran
            .iter()
            .map(|(name, took)| format!("{name} {:.2}s", took.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn total(&self) -> Duration {
        self.ran.iter().map(|(_, took)| *took).sum()
    }
}

/// Runs (or, with `dry_run`, describes) the selected phases of `phases` in order. The first
/// error stops the run and is returned with the phase's name; a dry run runs only the phases
/// that only read ([`Phase::runs_in_dry_run`]).
pub async fn run<C: Workflow>(
    phases: &[&dyn Phase<C>],
    ctx: &mut C,
    selection: &Selection,
    dry_run: bool,
) -> Result<Report, Failed<C::Error>> {
    let mut report = Report::default();
    for phase in phases {
        let name = phase.name();
        if !selection.selects(name) {
            report.skipped.push(name);
            continue;
        }
        if dry_run && !phase.runs_in_dry_run() {
            let lines = phase.dry_run(ctx);
            let out = ctx.out();
            for line in lines {
                let _ = writeln!(out, "[dry-run] [{name}] {line}");
            }
            continue;
        }
        let started = Instant::now();
        let result = phase.run(ctx).await;
        let took = started.elapsed();
        if let Err(error) = result {
            return Err(Failed {
                phase: name,
                error,
                report,
            });
        }
        report.ran.push((name, took));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workflow that records which phases ran, and fails the one named `fail`.
    #[derive(Default)]
    struct Recorder {
        ran: Vec<&'static str>,
        fail: &'static str,
        out: Vec<u8>,
    }

    impl Workflow for Recorder {
        type Error = String;
        fn out(&mut self) -> &mut dyn Write {
            &mut self.out
        }
    }

    struct Named(&'static str);

    impl Phase<Recorder> for Named {
        fn name(&self) -> &'static str {
            self.0
        }
        fn summary(&self) -> &'static str {
            "does its thing"
        }
        fn run<'a>(&'a self, ctx: &'a mut Recorder) -> PhaseFuture<'a, String> {
            Box::pin(async move {
                if ctx.fail == self.0 {
                    return Err(format!("{} broke", self.0));
                }
                ctx.ran.push(self.0);
                Ok(())
            })
        }
    }

    const PHASES: [&dyn Phase<Recorder>; 4] = [
        &Named("preflight"),
        &Named("addon/coredns"),
        &Named("addon/kube-proxy"),
        &Named("post"),
    ];

    fn run_now(
        ctx: &mut Recorder,
        selection: &Selection,
        dry: bool,
    ) -> Result<Report, Failed<String>> {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(&PHASES, ctx, selection, dry))
    }

    #[test]
    fn skipping_a_parent_skips_its_children_and_the_flag_wins_over_the_config() {
        let config = ["post".to_string()];
        let selection = Selection::skip(&["addon".into()], &config, &PHASES).unwrap();
        let mut ctx = Recorder::default();
        let report = run_now(&mut ctx, &selection, false).unwrap();
        assert_eq!(ctx.ran, ["preflight", "post"]);
        assert_eq!(report.skipped, ["addon/coredns", "addon/kube-proxy"]);
        assert_eq!(report.ran.len(), 2);

        let selection = Selection::skip(&[], &config, &PHASES).unwrap();
        let mut ctx = Recorder::default();
        run_now(&mut ctx, &selection, false).unwrap();
        assert_eq!(ctx.ran, ["preflight", "addon/coredns", "addon/kube-proxy"]);
    }

    #[test]
    fn only_runs_one_phase_or_one_parent() {
        for (name, expected) in [
            ("addon", &["addon/coredns", "addon/kube-proxy"][..]),
            ("addon/all", &["addon/coredns", "addon/kube-proxy"][..]),
            ("addon/kube-proxy", &["addon/kube-proxy"][..]),
            ("preflight", &["preflight"][..]),
        ] {
            let mut ctx = Recorder::default();
            run_now(&mut ctx, &Selection::only(name, &PHASES).unwrap(), false).unwrap();
            assert_eq!(ctx.ran, expected, "phase {name}");
        }
    }

    #[test]
    fn unknown_names_are_refused_with_the_list() {
        let err = Selection::skip(&["adon".into()], &[], &PHASES).unwrap_err();
        assert_eq!(err.name, "adon");
        assert_eq!(
            err.known,
            "preflight, addon, addon/coredns, addon/kube-proxy, post"
        );
        // A prefix that is not a whole path element names nothing.
        assert!(Selection::only("add", &PHASES).is_err());
        assert!(Selection::only("addon/coredns/x", &PHASES).is_err());
    }

    #[test]
    fn an_error_names_its_phase_and_stops_the_run() {
        let mut ctx = Recorder {
            fail: "addon/coredns",
            ..Recorder::default()
        };
        let failed = run_now(&mut ctx, &Selection::all(), false).unwrap_err();
        assert_eq!(failed.phase, "addon/coredns");
        assert_eq!(
            failed.to_string(),
            "phase addon/coredns: addon/coredns broke"
        );
        assert_eq!(ctx.ran, ["preflight"]);
        assert_eq!(failed.report.ran.len(), 1);
    }

    #[test]
    fn a_dry_run_describes_the_selected_phases_and_runs_none() {
        let mut ctx = Recorder::default();
        let selection = Selection::skip(&["addon/kube-proxy".into()], &[], &PHASES).unwrap();
        let report = run_now(&mut ctx, &selection, true).unwrap();
        assert!(ctx.ran.is_empty());
        assert!(report.ran.is_empty());
        let printed = String::from_utf8(ctx.out).unwrap();
        assert_eq!(
            printed,
            "[dry-run] [preflight] does its thing\n\
             [dry-run] [addon/coredns] does its thing\n\
             [dry-run] [post] does its thing\n"
        );
    }

    /// A phase with old names, or one that only reads.
    struct Special {
        name: &'static str,
        aliases: &'static [&'static str],
        reads_only: bool,
    }

    impl Phase<Recorder> for Special {
        fn name(&self) -> &'static str {
            self.name
        }
        fn summary(&self) -> &'static str {
            "special"
        }
        fn aliases(&self) -> &'static [&'static str] {
            self.aliases
        }
        fn runs_in_dry_run(&self) -> bool {
            self.reads_only
        }
        fn run<'a>(&'a self, ctx: &'a mut Recorder) -> PhaseFuture<'a, String> {
            Box::pin(async move {
                ctx.ran.push(self.name);
                Ok(())
            })
        }
    }

    const ALIASED: [&dyn Phase<Recorder>; 4] = [
        &Special {
            name: "preflight",
            aliases: &[],
            reads_only: true,
        },
        &Special {
            name: "kubelet-start",
            aliases: &["agent"],
            reads_only: false,
        },
        &Special {
            name: "upload-config",
            aliases: &["post-boot"],
            reads_only: false,
        },
        &Special {
            name: "mark-control-plane",
            aliases: &["post-boot"],
            reads_only: false,
        },
    ];

    fn run_aliased(selection: &Selection, dry: bool) -> (Vec<&'static str>, String) {
        let mut ctx = Recorder::default();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(&ALIASED, &mut ctx, selection, dry))
            .unwrap();
        (ctx.ran, String::from_utf8(ctx.out).unwrap())
    }

    #[test]
    fn an_alias_stands_for_every_phase_that_has_it() {
        let only = Selection::only("post-boot", &ALIASED).unwrap();
        assert_eq!(
            only,
            Selection::Only(vec!["upload-config".into(), "mark-control-plane".into()])
        );
        assert_eq!(
            run_aliased(&only, false).0,
            ["upload-config", "mark-control-plane"]
        );
        let skip = Selection::skip(&["agent,post-boot".into()], &[], &ALIASED).unwrap();
        assert_eq!(run_aliased(&skip, false).0, ["preflight"]);
        assert!(Selection::only("post", &ALIASED).is_err());
    }

    #[test]
    fn a_phase_that_only_reads_runs_in_a_dry_run() {
        let (ran, printed) = run_aliased(&Selection::all(), true);
        assert_eq!(ran, ["preflight"]);
        assert!(!printed.contains("[preflight]"), "{printed}");
        assert!(
            printed.contains("[dry-run] [kubelet-start] special"),
            "{printed}"
        );
    }

    #[test]
    fn timings_read_as_one_line() {
        let report = Report {
            ran: vec![
                ("preflight", Duration::from_millis(40)),
                ("certs", Duration::from_millis(412)),
            ],
            skipped: vec![],
        };
        assert_eq!(report.timings(), "preflight 0.04s, certs 0.41s");
        assert_eq!(report.total(), Duration::from_millis(452));
    }
}
