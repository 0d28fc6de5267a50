//! The kernel's error type. Each variant carries the stable snake_case code
//! that the API returns, so clients can rely on codes rather than messages.

/// Errors raised by the kernel; `web` maps each kind onto an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// Input that cannot be parsed at all (400).
    #[error("{message}")]
    Malformed { code: &'static str, message: String },
    /// Input that parses but holds a value the domain does not allow (422).
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("{0}")]
    NotFound(String),
    /// Not found (404) for a reason clients must tell apart from a plain
    /// `not_found`, e.g. an event logged but not yet covered by a checkpoint.
    #[error("{message}")]
    Missing { code: &'static str, message: String },
    /// The write would break a uniqueness rule (409).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("authentication required")]
    Unauthenticated,
    #[error("invalid username or password")]
    BadCredentials,
    /// Outside the caller's role or region scope (403).
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed sign-in attempts; try again in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

impl CoreError {
    pub fn malformed(code: &'static str, message: impl Into<String>) -> Self {
        Self::Malformed {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    pub fn missing(code: &'static str, message: impl Into<String>) -> Self {
        Self::Missing {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The stable code clients see in `{"error": ...}`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed { code, .. }
            | Self::Invalid { code, .. }
            | Self::Missing { code, .. }
            | Self::Conflict { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::Unauthenticated => "unauthenticated",
            Self::BadCredentials => "bad_credentials",
            Self::Forbidden(_) => "forbidden",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::Database(_) | Self::Migrate(_) | Self::Io(_) | Self::Internal(_) => "internal",
        }
    }

    /// True when a unique constraint rejected the write, on either backend.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}
