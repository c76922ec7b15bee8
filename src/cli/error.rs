//! Errors as users see them: a headline naming the file, field, pod or certificate, the cause
//! chain, and a hint. Each kind maps to a documented exit code (README "Exit codes").

use std::error::Error as StdError;
use std::fmt;

/// Documented process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    Ok = 0,
    /// A command ran and found something unhealthy (`boot status`, reset leftovers).
    Unhealthy = 1,
    /// Bad command line or configuration.
    Usage = 2,
    /// Preflight checks failed.
    Preflight = 3,
    /// PKI, rendering or writing files failed.
    Files = 4,
    /// The control plane did not become healthy in time.
    Timeout = 5,
    /// The agent is not running or could not be reached.
    AgentDown = 6,
    /// An image could not be pulled, imported, verified or found.
    Image = 7,
    /// `boot join` could not join: discovery, the shared certificates or etcd membership.
    Join = 8,
}

#[derive(Debug)]
pub struct CliError {
    pub code: ExitCode,
    pub headline: String,
    pub cause: Option<Box<dyn StdError + Send + Sync>>,
    pub hint: Option<String>,
}

impl CliError {
    pub fn new(code: ExitCode, headline: impl Into<String>) -> Self {
        CliError {
            code,
            headline: headline.into(),
            cause: None,
            hint: None,
        }
    }

    pub fn usage(headline: impl Into<String>, hint: impl Into<String>) -> Self {
        CliError::new(ExitCode::Usage, headline).with_hint(hint)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_cause(mut self, cause: impl StdError + Send + Sync + 'static) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    pub fn exit_code(&self) -> ExitCode {
        self.code
    }

    /// Prints `error: headline`, then `caused by:` lines, then `hint:` to stderr.
    pub fn print(&self) {
        eprintln!("{self}");
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.headline)?;
        let mut cause: Option<&(dyn StdError + 'static)> = self.cause.as_deref().map(|c| c as _);
        while let Some(c) = cause {
            write!(f, "\n  caused by: {c}")?;
            cause = c.source();
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nhint: {hint}")?;
        }
        Ok(())
    }
}

impl StdError for CliError {}
