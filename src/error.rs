//! One error type for the whole tap. Each class maps to its own exit code so
//! that an orchestrator (or a person reading a cron mail) can tell a typo in a
//! config file from a revoked key from an API that is down.

use std::fmt;

/// Exit codes, documented in the README. 0 is success; a broken pipe on
/// stdout (the target exited) also ends with 0, quietly.
pub mod exit {
    pub const INTERNAL: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const CONFIG: i32 = 3;
    pub const STATE: i32 = 4;
    pub const CATALOG: i32 = 5;
    pub const AUTH: i32 = 6;
    pub const API: i32 = 7;
    pub const OUTPUT: i32 = 8;
    /// Some streams failed (past their retries, or on an unusable answer)
    /// while the others completed: a partial run.
    pub const PARTIAL: i32 = 9;
    /// 128 + signal number, as shells report a process killed by a signal.
    pub const SIGINT: i32 = 130;
    pub const SIGTERM: i32 = 143;
}

#[derive(Debug)]
pub enum Error {
    /// A config file or environment variable is missing, unreadable or wrong.
    Config(String),
    /// The state file is unreadable or of the wrong shape.
    State(String),
    /// The catalog file is unreadable, names unknown streams, or selects nothing.
    Catalog(String),
    /// The API refused the credentials (401/403).
    Auth(String),
    /// The API kept failing after the retry budget, or answered something the
    /// tap cannot use.
    Api(String),
    /// Writing to stdout failed for a reason other than a closed pipe.
    Output(String),
    /// Some streams failed, the others completed: names each failed stream
    /// and why.
    Partial(String),
    /// Stopped by SIGINT/SIGTERM after flushing records and a final STATE.
    Interrupted(i32),
    /// Anything else: a bug, or the machine misbehaving.
    Internal(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => exit::CONFIG,
            Error::State(_) => exit::STATE,
            Error::Catalog(_) => exit::CATALOG,
            Error::Auth(_) => exit::AUTH,
            Error::Api(_) => exit::API,
            Error::Output(_) => exit::OUTPUT,
            Error::Partial(_) => exit::PARTIAL,
            Error::Interrupted(code) => *code,
            Error::Internal(_) => exit::INTERNAL,
        }
    }
}

impl Error {
    /// The same error (and exit code), its message rewritten.
    pub fn map_message(self, f: impl FnOnce(String) -> String) -> Error {
        match self {
            Error::Config(m) => Error::Config(f(m)),
            Error::State(m) => Error::State(f(m)),
            Error::Catalog(m) => Error::Catalog(f(m)),
            Error::Auth(m) => Error::Auth(f(m)),
            Error::Api(m) => Error::Api(f(m)),
            Error::Output(m) => Error::Output(f(m)),
            Error::Partial(m) => Error::Partial(f(m)),
            Error::Internal(m) => Error::Internal(f(m)),
            e @ Error::Interrupted(_) => e,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "config error: {m}"),
            Error::State(m) => write!(f, "state error: {m}"),
            Error::Catalog(m) => write!(f, "catalog error: {m}"),
            Error::Auth(m) => write!(f, "authentication failed: {m}"),
            Error::Api(m) => write!(f, "Gleap API error: {m}"),
            Error::Output(m) => write!(f, "output error: {m}"),
            Error::Partial(m) => write!(f, "partial run: {m}"),
            Error::Interrupted(code) => {
                let sig = if *code == exit::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                write!(f, "stopped by {sig}: records read so far were written and the final STATE covers them")
            }
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;
