//! The configuration error: `file:line: Document.field.path: what is wrong`, plus a hint.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `--flag`) the value came from.
    pub file: String,
    pub line: Option<usize>,
    /// `Kind.field.path`, empty when the error is about the whole document.
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// An error about a command-line flag.
    pub fn flag(flag: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: flag.to_string(),
            line: None,
            path: String::new(),
            message: message.into(),
            hint: None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}
