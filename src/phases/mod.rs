//! The one phase runner every orchestration uses (kubeadm's `cmd/kubeadm/app/cmd/phases/
//! workflow`): a phase is a name, a one-line summary, what a dry run would do, and a `run` over
//! the orchestration's context. `init`, `join`, `upgrade` and `reset` are ordered lists of phases;
//! this module selects which of them run (`--skip-phases`, `phase NAME`), runs or describes them
//! (`--dry-run`), times each one, and names the phase an error came from.
//!
//! Phase names are kubeadm's paths: `certs`, `addon/coredns`. Skipping or selecting a parent
//! (`addon`) covers its children (`addon/coredns`, `addon/kube-proxy`), as in kubeadm.
//!
//! Pure apart from the phases it runs and the lines it writes; touches no host path itself.

mod runner;

pub use runner::{
    names, run, Failed, Phase, PhaseFuture, Report, Selection, SelectionError, Workflow,
};
