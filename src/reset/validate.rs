//! The ledger is read back from disk, so it is untrusted: before reset removes anything, every
//! path in it must be plain (absolute, no `.` or `..`), lie under one of boot's own directories
//! beneath the root (or be a directory init created on the way to one), and never be `/`, the
//! root itself, a top-level or well-known system directory, or a home directory. The agent
//! launch must name boot's own unit, pid file and log file. Pure apart from reading
//! `/etc/passwd` for the home directories.

use std::path::{Component, Path, PathBuf};

use crate::host::layout::{Protected, AGENT_LOG, OWNED, PID_FILE, UNIT_FILE, UNIT_NAME};
use crate::host::ledger::{AgentLaunch, Ledger};
use crate::host::HostRoot;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("{ledger}: {field} entry {path:?} is not a plain absolute path (relative, or with `.` or `..`)")]
    NotPlain {
        ledger: PathBuf,
        field: &'static str,
        path: PathBuf,
    },
    #[error("{ledger}: {field} entry {path} lies outside boot's directories under {root}")]
    Outside {
        ledger: PathBuf,
        field: &'static str,
        path: PathBuf,
        root: PathBuf,
    },
    #[error("{ledger}: {field} entry {path} is the root, a system directory or a home directory; boot never removes it")]
    Protected {
        ledger: PathBuf,
        field: &'static str,
        path: PathBuf,
    },
    #[error("{ledger}: the agent's {what} is {found:?}, not boot's {expected:?}")]
    Agent {
        ledger: PathBuf,
        what: &'static str,
        found: String,
        expected: String,
    },
}

/// What a ledger may name, for one root.
pub struct Bounds {
    root: PathBuf,
    prefixes: Vec<PathBuf>,
    protected: Protected,
}

impl Bounds {
    /// boot's directories under `root` plus the ones an init recorded (its configured
    /// certificate, manifest and etcd directories); the protected ones from this host.
    pub fn new(root: &HostRoot, recorded: impl IntoIterator<Item = PathBuf>) -> Bounds {
        Bounds::with(root, recorded, Protected::for_host(root))
    }

    fn with(
        root: &HostRoot,
        recorded: impl IntoIterator<Item = PathBuf>,
        protected: Protected,
    ) -> Bounds {
        let mut prefixes: Vec<PathBuf> = OWNED.iter().map(|p| root.path(p)).collect();
        prefixes.extend(recorded);
        Bounds {
            root: root.prefix().to_path_buf(),
            prefixes,
            protected,
        }
    }

    fn is_protected(&self, path: &Path) -> bool {
        self.protected.contains(path)
    }
}

/// Checks every path and the agent launch of `ledger` (already recorded under `root`).
pub fn validate(ledger: &Ledger, root: &HostRoot) -> Result<(), LedgerError> {
    let file = Ledger::path(root);
    let recorded: Vec<PathBuf> = ledger.prefixes.iter().cloned().collect();
    for prefix in &recorded {
        check_plain(&file, "prefixes", prefix)?;
    }
    let bounds = Bounds::new(root, recorded);
    for prefix in &ledger.prefixes {
        check_place(&file, "prefixes", prefix, &bounds, Place::UnderRoot)?;
    }
    for path in &ledger.files {
        check_place(&file, "files", path, &bounds, Place::Inside)?;
    }
    for path in &ledger.owned_trees {
        check_place(&file, "ownedTrees", path, &bounds, Place::Inside)?;
    }
    for path in &ledger.created_dirs {
        check_place(&file, "createdDirs", path, &bounds, Place::InsideOrOnTheWay)?;
    }
    check_agent(&file, ledger.agent.as_ref(), root)
}

#[derive(Clone, Copy, PartialEq)]
enum Place {
    Inside,
    /// A directory created on the way to one of boot's (e.g. `<root>/var/lib`).
    InsideOrOnTheWay,
    /// Anywhere beneath the root (the recorded prefixes themselves).
    UnderRoot,
}

fn check_plain(ledger: &Path, field: &'static str, path: &Path) -> Result<(), LedgerError> {
    let plain = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(LedgerError::NotPlain {
            ledger: ledger.to_path_buf(),
            field,
            path: path.to_path_buf(),
        })
    }
}

fn check_place(
    ledger: &Path,
    field: &'static str,
    path: &Path,
    bounds: &Bounds,
    place: Place,
) -> Result<(), LedgerError> {
    check_plain(ledger, field, path)?;
    if bounds.is_protected(path) {
        return Err(LedgerError::Protected {
            ledger: ledger.to_path_buf(),
            field,
            path: path.to_path_buf(),
        });
    }
    let inside = bounds.prefixes.iter().any(|p| path.starts_with(p));
    let on_the_way = bounds
        .prefixes
        .iter()
        .any(|p| p.starts_with(path) && path.starts_with(&bounds.root));
    let allowed = match place {
        Place::Inside => inside,
        Place::InsideOrOnTheWay => inside || on_the_way,
        Place::UnderRoot => path.starts_with(&bounds.root),
    };
    if allowed {
        Ok(())
    } else {
        Err(LedgerError::Outside {
            ledger: ledger.to_path_buf(),
            field,
            path: path.to_path_buf(),
            root: bounds.root.clone(),
        })
    }
}

fn check_agent(
    ledger: &Path,
    launch: Option<&AgentLaunch>,
    root: &HostRoot,
) -> Result<(), LedgerError> {
    let expect = |what: &'static str, found: String, expected: String| {
        if found == expected {
            Ok(())
        } else {
            Err(LedgerError::Agent {
                ledger: ledger.to_path_buf(),
                what,
                found,
                expected,
            })
        }
    };
    let shown = |p: &Path| p.display().to_string();
    match launch {
        Some(AgentLaunch::Systemd { unit, unit_file }) => {
            expect("unit", unit.clone(), UNIT_NAME.into())?;
            let want = root.path(UNIT_FILE);
            expect("unit file", shown(unit_file), shown(&want))
        }
        Some(AgentLaunch::Detached { pid_file, log_file }) => {
            expect("pid file", shown(pid_file), shown(&root.path(PID_FILE)))?;
            expect("log file", shown(log_file), shown(&root.path(AGENT_LOG)))
        }
        Some(AgentLaunch::Foreground) | None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger_with(f: impl FnOnce(&mut Ledger, &HostRoot)) -> (Ledger, HostRoot) {
        let root = HostRoot::under("/tmp/r").unwrap();
        let mut ledger = Ledger::default();
        ledger.files.insert(root.path("/etc/kubernetes/admin.conf"));
        ledger.created_dirs.insert(root.path("/var"));
        ledger.created_dirs.insert(root.path("/var/lib"));
        ledger.owned_trees.insert(root.path("/var/lib/etcd"));
        f(&mut ledger, &root);
        (ledger, root)
    }

    fn check(f: impl FnOnce(&mut Ledger, &HostRoot)) -> Result<(), LedgerError> {
        let (ledger, root) = ledger_with(f);
        validate(&ledger, &root)
    }

    #[test]
    fn what_init_records_is_accepted() {
        check(|_, _| {}).unwrap();
        check(|l, r| {
            l.prefixes.insert(r.path("/srv/pki"));
            l.files.insert(r.path("/srv/pki/ca.key"));
            l.created_dirs.insert(r.path("/srv"));
            l.agent = Some(AgentLaunch::Systemd {
                unit: UNIT_NAME.into(),
                unit_file: r.path("/etc/systemd/system/boot-agent.service"),
            });
        })
        .unwrap();
    }

    #[test]
    fn dot_dot_and_relative_paths_are_refused() {
        let err = check(|l, r| {
            l.owned_trees.insert(r.prefix().join("../elsewhere"));
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                LedgerError::NotPlain {
                    field: "ownedTrees",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("../elsewhere"), "{err}");
        assert!(check(|l, _| {
            l.files.insert("etc/kubernetes/admin.conf".into());
        })
        .is_err());
    }

    #[test]
    fn paths_outside_boots_directories_are_refused() {
        let err = check(|l, r| {
            l.files.insert(r.path("/etc/shadow"));
        })
        .unwrap_err();
        assert!(
            matches!(err, LedgerError::Outside { field: "files", .. }),
            "{err}"
        );
        let err = check(|l, _| {
            l.owned_trees.insert("/opt/data".into());
        })
        .unwrap_err();
        assert!(matches!(err, LedgerError::Outside { .. }), "{err}");
        // A directory on the way to boot's is fine only beneath the root.
        assert!(check(|l, _| {
            l.created_dirs.insert("/tmp".into());
        })
        .is_err());
    }

    #[test]
    fn system_and_home_directories_are_never_removed() {
        for path in [
            "/",
            "/tmp",
            "/tmp/r",
            "/home",
            "/home/alice",
            "/var/lib",
            "/etc/systemd",
        ] {
            let err = check(|l, _| {
                l.created_dirs.insert(path.into());
            })
            .unwrap_err();
            assert!(
                matches!(err, LedgerError::Protected { .. }),
                "{path}: {err}"
            );
        }
        let bounds = Bounds::with(
            &HostRoot::system(),
            Vec::new(),
            Protected::with_homes(
                &HostRoot::system(),
                crate::host::layout::home_dirs(
                    "alice:x:1000:1000::/srv/alice:/bin/sh\nroot:x:0:0::/root:/bin/sh\n",
                ),
            ),
        );
        assert!(bounds.is_protected(Path::new("/srv/alice")));
        assert!(bounds.is_protected(Path::new("/root")));
        assert!(!bounds.is_protected(Path::new("/etc/kubernetes")));
    }

    #[test]
    fn the_agent_launch_must_be_boots() {
        let err = check(|l, r| {
            l.agent = Some(AgentLaunch::Systemd {
                unit: "sshd.service".into(),
                unit_file: r.path("/etc/systemd/system/boot-agent.service"),
            });
        })
        .unwrap_err();
        assert!(err.to_string().contains("sshd.service"), "{err}");
        let err = check(|l, r| {
            l.agent = Some(AgentLaunch::Detached {
                pid_file: r.path("/run/sshd.pid"),
                log_file: r.path(AGENT_LOG),
            });
        })
        .unwrap_err();
        assert!(err.to_string().contains("pid file"), "{err}");
    }
}
