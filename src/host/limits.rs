//! Process resource limits. At agent start the soft `RLIMIT_NOFILE` is raised to the hard limit,
//! as every Go program does since Go 1.19 (`os` package init) and so the kubelet does: the
//! default soft limit of 1024 is easily reached by a supervisor holding pipes, pidfds, log files
//! and client connections. Touches no path.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// The open-files limit after the change: `(soft, hard)`.
pub type OpenFiles = (u64, u64);

/// Raises the soft open-files limit to the hard one. Failing is not fatal: the caller warns and
/// runs with what it has.
pub fn raise_open_files_limit() -> Result<OpenFiles, nix::Error> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    getrlimit(Resource::RLIMIT_NOFILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        // Set the soft limit just below the hard one (plenty for the other tests running in
        // this process) so that the raise has something to do wherever the test runs.
        let lowered = hard - 1;
        setrlimit(Resource::RLIMIT_NOFILE, lowered, hard).unwrap();
        assert_eq!(getrlimit(Resource::RLIMIT_NOFILE).unwrap(), (lowered, hard));
        assert_eq!(raise_open_files_limit().unwrap(), (hard, hard));
    }
}
