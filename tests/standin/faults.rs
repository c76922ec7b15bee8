//! Fault injection: words from `BOOT_STANDIN_FAULTS` (read once at start) merged with the
//! words of the file named by `BOOT_STANDIN_CONTROL` (re-read on every request and every
//! 100 ms by the watchdog), so a test can change the behaviour of a running process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Environment variable holding fault words applied for the whole life of the process.
pub const FAULTS_ENV: &str = "BOOT_STANDIN_FAULTS";
/// Environment variable naming the control file whose words are re-read while running.
pub const CONTROL_ENV: &str = "BOOT_STANDIN_CONTROL";

/// How often the watchdog re-reads the control file for `exit=` and `crash-after=`.
const WATCHDOG_PERIOD: Duration = Duration::from_millis(100);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// Exit 1 with a message once the process has run this long.
    pub crash_after: Option<Duration>,
    /// Exit with this code as soon as it is seen.
    pub exit: Option<i32>,
    /// At start: never listen. While running: accept requests but never answer them.
    pub hang: bool,
    pub ignore_sigterm: bool,
    pub fail_livez: bool,
    pub fail_readyz: bool,
    pub fail_healthz: bool,
    /// Listen only after this delay.
    pub slow_start: Option<Duration>,
    /// Authorize API calls like RBAC after `kubeadm init`'s bootstrap: group `system:masters`
    /// may do anything, others only once a ClusterRoleBinding to `cluster-admin` names them.
    pub rbac: bool,
}

impl Faults {
    /// Parses whitespace- or comma-separated words; the first unknown word is the error.
    pub fn parse(text: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for word in text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
        {
            faults.apply(word)?;
        }
        Ok(faults)
    }

    fn apply(&mut self, word: &str) -> Result<(), String> {
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (word, None),
        };
        let number = |v: Option<&str>| -> Result<u64, String> {
            v.and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("fault word {word:?} needs a number: {name}=N"))
        };
        match name {
            "crash-after" => self.crash_after = Some(Duration::from_millis(number(value)?)),
            "slow-start" => self.slow_start = Some(Duration::from_millis(number(value)?)),
            "exit" => {
                let code = number(value)?;
                self.exit = Some(
                    i32::try_from(code).map_err(|_| format!("exit code too large in {word:?}"))?,
                );
            }
            "hang" => self.hang = true,
            "ignore-sigterm" => self.ignore_sigterm = true,
            "fail-livez" => self.fail_livez = true,
            "fail-readyz" => self.fail_readyz = true,
            "fail-healthz" => self.fail_healthz = true,
            "rbac" => self.rbac = true,
            _ => return Err(format!("unknown fault word {word:?}")),
        }
        Ok(())
    }

    /// The union of two sets of words; timed values take the smaller duration.
    fn merge(mut self, other: Faults) -> Faults {
        let min = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.crash_after = min(self.crash_after, other.crash_after);
        self.slow_start = min(self.slow_start, other.slow_start);
        self.exit = self.exit.or(other.exit);
        self.hang |= other.hang;
        self.ignore_sigterm |= other.ignore_sigterm;
        self.fail_livez |= other.fail_livez;
        self.fail_readyz |= other.fail_readyz;
        self.fail_healthz |= other.fail_healthz;
        self.rbac |= other.rbac;
        self
    }
}

/// Where the current faults come from.
#[derive(Debug)]
pub struct FaultSource {
    from_env: Faults,
    control: Option<PathBuf>,
    started: Instant,
}

impl FaultSource {
    /// Reads the environment and the control file once; bad words here are a start-up error.
    pub fn from_env() -> Result<FaultSource, String> {
        let from_env = Faults::parse(&std::env::var(FAULTS_ENV).unwrap_or_default())
            .map_err(|e| format!("{FAULTS_ENV}: {e}"))?;
        let control = std::env::var_os(CONTROL_ENV).map(PathBuf::from);
        let source = FaultSource {
            from_env,
            control,
            started: Instant::now(),
        };
        source.read_control()?;
        Ok(source)
    }

    /// The faults in force now. A missing control file means no extra faults; an unreadable
    /// or invalid one keeps only the environment's faults and says so on stderr.
    pub fn current(&self) -> Faults {
        match self.read_control() {
            Ok(extra) => self.from_env.clone().merge(extra),
            Err(e) => {
                crate::log(&e);
                self.from_env.clone()
            }
        }
    }

    fn read_control(&self) -> Result<Faults, String> {
        let Some(path) = &self.control else {
            return Ok(Faults::default());
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Faults::parse(&text).map_err(|e| format!("control file {}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Faults::default()),
            Err(e) => Err(format!("control file {}: {e}", path.display())),
        }
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// Exits the process when `exit=` or an expired `crash-after=` is in force; checked at start
/// and then by the watchdog.
pub fn exit_if_told(faults: &Faults, uptime: Duration) {
    if let Some(code) = faults.exit {
        crate::log(&format!(
            "exiting with code {code} as told by the fault word exit={code}"
        ));
        std::process::exit(code);
    }
    if let Some(after) = faults.crash_after {
        if uptime >= after {
            eprintln!(
                "F boot-standin] crashing after {} ms as told by crash-after={}",
                uptime.as_millis(),
                after.as_millis()
            );
            std::process::exit(1);
        }
    }
}

/// Polls the faults so `exit=` and `crash-after=` act without waiting for a request.
pub async fn watchdog(source: std::sync::Arc<FaultSource>) {
    loop {
        exit_if_told(&source.current(), source.uptime());
        tokio::time::sleep(WATCHDOG_PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_word() {
        let f = Faults::parse("crash-after=250 exit=3\nhang,ignore-sigterm fail-livez fail-readyz fail-healthz slow-start=10").unwrap();
        assert_eq!(f.crash_after, Some(Duration::from_millis(250)));
        assert_eq!(f.exit, Some(3));
        assert!(f.hang && f.ignore_sigterm && f.fail_livez && f.fail_readyz && f.fail_healthz);
        assert_eq!(f.slow_start, Some(Duration::from_millis(10)));
        assert_eq!(Faults::parse("  ").unwrap(), Faults::default());
    }

    #[test]
    fn rejects_unknown_words_and_missing_numbers() {
        assert!(Faults::parse("explode").unwrap_err().contains("explode"));
        assert!(Faults::parse("crash-after").is_err());
        assert!(Faults::parse("exit=x").is_err());
    }

    #[test]
    fn merge_is_a_union() {
        let a = Faults::parse("fail-livez crash-after=500").unwrap();
        let b = Faults::parse("hang crash-after=100").unwrap();
        let m = a.merge(b);
        assert!(m.fail_livez && m.hang);
        assert_eq!(m.crash_after, Some(Duration::from_millis(100)));
    }
}
