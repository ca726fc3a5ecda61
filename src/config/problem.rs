//! `Problem`: one thing wrong (or worth a warning) in config, descriptors or schemas, with where
//! it is. `check`, reload and `serve` all report problems in this one shape.

use std::fmt;
use std::path::PathBuf;

/// How serious a problem is: errors refuse the config; warnings are printed and served anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Refuses the build.
    Error,
    /// Reported; the build goes on.
    Warning,
}

/// One problem and its location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Error or warning.
    pub severity: Severity,
    /// The file it is in, if it is in one.
    pub file: Option<PathBuf>,
    /// 1-based line in that file, when known.
    pub line: Option<usize>,
    /// The key path (`backends.catalog.endpoints[0]`) or the definition it concerns.
    pub path: String,
    /// What is wrong, and where useful what would be right.
    pub message: String,
}

impl Problem {
    /// An error at `path`.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { severity: Severity::Error, file: None, line: None, path: path.into(), message: message.into() }
    }

    /// A warning at `path`.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { severity: Severity::Warning, ..Problem::error(path, message) }
    }

    /// The same problem, located in `file`.
    pub fn in_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// The same problem, at `line` (1-based).
    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{label}: ")?;
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{}:{line}: ", file.display())?,
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(line)) => write!(f, "line {line}: ")?,
            (None, None) => {}
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.message)
    }
}
