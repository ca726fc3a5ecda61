//! Registry errors: each names the file, registration or definition at fault.

use std::path::PathBuf;

use crate::error::ErrorCode;

/// Something the registry refused or could not do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A .proto source failed to compile; the message starts with `file:line:column`.
    #[error("{0}")]
    Compile(String),
    /// An input file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A binary descriptor set or stored registration is not valid.
    #[error("{what}: {message}")]
    InvalidDescriptors {
        /// The file or source it came from.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// The new registration clashes with registered definitions; nothing was changed.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The registration name is taken.
    #[error("{0}")]
    AlreadyRegistered(String),
    /// Replacing a registration would break its clients and `--allow-breaking` was not given.
    #[error(
        "replacing `{name}` would break its clients; nothing was changed (pass --allow-breaking to replace it \
         anyway):\n{report}"
    )]
    Breaking {
        /// The registration.
        name: String,
        /// What would change.
        report: super::CompatReport,
    },
    /// `rollback` found no earlier version.
    #[error("`{0}` has no earlier version to roll back to")]
    NoEarlierVersion(String),
    /// No registration has this name.
    #[error("no registration named `{0}`")]
    NotFound(String),
    /// A registration name that cannot be a file name.
    #[error("`{0}` is not a valid registration name (letters, digits, `.`, `_` and `-`)")]
    InvalidName(String),
    /// A live server could not be reached or answered badly during `pull`.
    #[error("{0}")]
    Reflection(String),
    /// The shared registry (Redis) could not be read or written.
    #[error("{0}")]
    Shared(String),
    /// Another change reached the shared registry after this one was checked.
    #[error(
        "the shared registry changed while this change was checked (generation {checked}, now {found}); nothing was written"
    )]
    Stale {
        /// The generation it was checked at.
        checked: u64,
        /// The generation found when writing.
        found: u64,
    },
    /// Writing the registry directory failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl RegistryError {
    /// The edge error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            RegistryError::Compile(_) | RegistryError::InvalidDescriptors { .. } | RegistryError::InvalidName(_) => {
                ErrorCode::InvalidArgument
            }
            RegistryError::Conflict(_) | RegistryError::AlreadyRegistered(_) => ErrorCode::AlreadyExists,
            RegistryError::Breaking { .. } | RegistryError::NoEarlierVersion(_) => ErrorCode::FailedPrecondition,
            RegistryError::NotFound(_) => ErrorCode::NotFound,
            RegistryError::Reflection(_) | RegistryError::Shared(_) => ErrorCode::Unavailable,
            RegistryError::Stale { .. } => ErrorCode::Aborted,
            RegistryError::Read { .. } | RegistryError::Write { .. } => ErrorCode::Internal,
        }
    }

    /// True when the input was at fault (exit code 1), false for runtime failures (exit code 3).
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, RegistryError::Reflection(_) | RegistryError::Write { .. })
    }
}
