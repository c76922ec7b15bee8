//! Turning evaluated checks into what the user reads, as kubeadm's `RunChecks` does: ignored
//! checks have their errors demoted to warnings, each warning is `\t[WARNING Name]: msg`, and the
//! errors are gathered under `[preflight] Some fatal errors occurred:` with the
//! `--ignore-preflight-errors` hint. Pure.

use std::collections::BTreeSet;
use std::fmt;

use super::check::{Check, Outcome, Severity};

/// The checks whose errors are only warnings: the union of `--ignore-preflight-errors` and
/// `nodeRegistration.ignorePreflightErrors`, lower-cased (kubeadm matches case-insensitively).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    names: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreListError {
    /// kubeadm's `ValidateIgnorePreflightErrors`.
    #[error(
        "--ignore-preflight-errors {given:?}: don't specify individual checks if 'all' is used"
    )]
    AllWithOthers { given: String },
}

impl IgnoreList {
    /// The union of both lists; entries may themselves be comma-separated (`a,b`), as the flag
    /// is a string slice in kubeadm.
    pub fn new(flag: &[String], config: &[String]) -> Self {
        let names = flag
            .iter()
            .chain(config)
            .flat_map(|entry| entry.split(','))
            .map(|name| name.trim().to_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        IgnoreList { names }
    }

    /// kubeadm refuses `all` together with individual names.
    pub fn validate(&self) -> Result<(), IgnoreListError> {
        if self.names.contains("all") && self.names.len() > 1 {
            let given = self.names.iter().cloned().collect::<Vec<_>>().join(",");
            return Err(IgnoreListError::AllWithOthers { given });
        }
        Ok(())
    }

    /// kubeadm's `setHasItemOrAll`.
    pub fn ignores(&self, check: &str) -> bool {
        self.names.contains("all") || self.names.contains(&check.to_lowercase())
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub name: String,
    pub message: String,
}

/// The failed checks, split as kubeadm prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightReport {
    pub warnings: Vec<Finding>,
    pub errors: Vec<Finding>,
}

/// Check names whose failure usually means an earlier `boot init` left something behind.
fn left_behind(name: &str) -> bool {
    name == "ExistingInstallation"
        || ["FileAvailable-", "DirAvailable-", "Port-"]
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

impl PreflightReport {
    /// Sorts failed checks into warnings and errors; an ignored error becomes a warning.
    pub fn evaluate(checks: &[Check], ignore: &IgnoreList) -> Self {
        let mut report = PreflightReport::default();
        for check in checks {
            let Outcome::Failed(message) = &check.outcome else {
                continue;
            };
            let finding = Finding {
                name: check.name.clone(),
                message: message.clone(),
            };
            if check.severity == Severity::Error && !ignore.ignores(&check.name) {
                report.errors.push(finding);
            } else {
                report.warnings.push(finding);
            }
        }
        report
    }

    /// True when nothing is fatal.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
    }

    /// The warning lines, each `\t[WARNING Name]: msg\n` (kubeadm writes them to stderr).
    pub fn warnings_text(&self) -> String {
        self.warnings
            .iter()
            .map(|w| format!("\t[WARNING {}]: {}\n", w.name, w.message))
            .collect()
    }

    /// kubeadm's fatal block, plus a pointer to `boot reset` when the failures look like the
    /// leftovers of an earlier init. Empty when nothing is fatal.
    pub fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return String::new();
        }
        let mut text = String::from("[preflight] Some fatal errors occurred:\n");
        for e in &self.errors {
            text.push_str(&format!("\t[ERROR {}]: {}\n", e.name, e.message));
        }
        text.push_str(
            "[preflight] If you know what you are doing, you can make a check non-fatal with \
             `--ignore-preflight-errors=...`\n",
        );
        if self.errors.iter().any(|e| left_behind(&e.name)) {
            text.push_str(
                "[preflight] If these are left from an earlier `boot init`, run `boot reset` to \
                 remove them\n",
            );
        }
        text
    }
}

impl fmt::Display for PreflightReport {
    /// The warnings, then the fatal block.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.warnings_text())?;
        f.write_str(&self.errors_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn failing(name: &str, severity: Severity) -> Check {
        Check {
            name: name.into(),
            severity,
            outcome: Outcome::Failed(format!("{name} failed")),
        }
    }

    #[test]
    fn ignore_list_is_a_case_insensitive_union() {
        let list = IgnoreList::new(&strings(&["port-6443,SWAP"]), &strings(&["NumCPU"]));
        assert!(list.ignores("Port-6443"));
        assert!(list.ignores("Swap"));
        assert!(list.ignores("numcpu"));
        assert!(!list.ignores("Mem"));
        assert!(list.validate().is_ok());
        assert!(IgnoreList::new(&[], &[]).validate().is_ok());
    }

    #[test]
    fn all_ignores_everything_but_not_with_others() {
        let all = IgnoreList::new(&strings(&["ALL"]), &[]);
        assert!(all.ignores("anything"));
        assert!(all.validate().is_ok());
        let mixed = IgnoreList::new(&strings(&["all"]), &strings(&["Swap"]));
        assert_eq!(
            mixed.validate().unwrap_err().to_string(),
            "--ignore-preflight-errors \"all,swap\": don't specify individual checks if 'all' is used"
        );
    }

    #[test]
    fn ignored_errors_become_warnings() {
        let checks = vec![
            failing("Mem", Severity::Error),
            failing("Port-6443", Severity::Error),
            failing("Swap", Severity::Warning),
            Check::error("NumCPU", Outcome::Passed),
            Check::error("IsPrivilegedUser", Outcome::Skipped("--root".into())),
        ];
        let report = PreflightReport::evaluate(&checks, &IgnoreList::new(&strings(&["mem"]), &[]));
        let names = |v: &[Finding]| v.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&report.warnings), ["Mem", "Swap"]);
        assert_eq!(names(&report.errors), ["Port-6443"]);
        assert!(!report.passed());
        let all = PreflightReport::evaluate(&checks, &IgnoreList::new(&strings(&["all"]), &[]));
        assert!(all.passed());
        assert_eq!(all.warnings.len(), 3);
    }

    #[test]
    fn display_is_kubeadms_format() {
        let report = PreflightReport {
            warnings: vec![Finding {
                name: "Swap".into(),
                message: "swap is on".into(),
            }],
            errors: vec![
                Finding {
                    name: "NumCPU".into(),
                    message: "the number of available CPUs 1 is less than the required 2".into(),
                },
                Finding {
                    name: "Mem".into(),
                    message: "the system RAM (1000 MB) is less than the minimum 1700 MB".into(),
                },
            ],
        };
        assert_eq!(
            report.to_string(),
            "\t[WARNING Swap]: swap is on\n\
             [preflight] Some fatal errors occurred:\n\
             \t[ERROR NumCPU]: the number of available CPUs 1 is less than the required 2\n\
             \t[ERROR Mem]: the system RAM (1000 MB) is less than the minimum 1700 MB\n\
             [preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\n"
        );
        let clean = PreflightReport {
            warnings: report.warnings.clone(),
            errors: vec![],
        };
        assert_eq!(clean.to_string(), "\t[WARNING Swap]: swap is on\n");
        assert_eq!(PreflightReport::default().to_string(), "");
    }

    #[test]
    fn leftovers_point_at_boot_reset() {
        for name in [
            "Port-6443",
            "FileAvailable--etc-kubernetes-manifests-etcd.yaml",
            "DirAvailable--var-lib-etcd",
            "ExistingInstallation",
        ] {
            let report = PreflightReport {
                warnings: vec![],
                errors: vec![Finding {
                    name: name.into(),
                    message: "x".into(),
                }],
            };
            let text = report.to_string();
            assert!(
                text.ends_with(
                    "`--ignore-preflight-errors=...`\n\
                     [preflight] If these are left from an earlier `boot init`, run `boot reset` to remove them\n"
                ),
                "{name}: {text}"
            );
        }
        let other = PreflightReport {
            warnings: vec![],
            errors: vec![Finding {
                name: "Mem".into(),
                message: "x".into(),
            }],
        };
        assert!(!other.to_string().contains("boot reset"));
    }
}
