//! One error type for everything shardgate refuses or fails at: a SQLSTATE, a client-safe message,
//! and log detail kept apart from what the client sees.

use std::fmt;

/// SQLSTATEs shardgate raises itself (PostgreSQL's errcodes.txt).
pub mod code {
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const SYNTAX_ERROR: &str = "42601";
    pub const INVALID_PASSWORD: &str = "28P01";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const CONNECTION_FAILURE: &str = "08006";
    /// The client's own connection failed: nothing can be reported, the session ends.
    pub const CLIENT_GONE: &str = "08003";
    pub const UNDEFINED_PSTATEMENT: &str = "26000";
    pub const UNDEFINED_CURSOR: &str = "34000";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const INSUFFICIENT_RESOURCES: &str = "53000";
    pub const QUERY_CANCELED: &str = "57014";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const IN_FAILED_TXN: &str = "25P02";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const STACK_DEPTH: &str = "54001";
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    pub const INVALID_AUTHORIZATION: &str = "28000";
    pub const IO_ERROR: &str = "58030";
    /// A commit whose outcome shardgate could not learn (PostgreSQL's
    /// transaction_resolution_unknown): recovery settles it by the decision record.
    pub const RESOLUTION_UNKNOWN: &str = "08007";
}

/// A worker's SQLSTATE as a `&'static str`: the set of SQLSTATEs is small and fixed, so each
/// distinct code is allocated once and kept. Anything that is not five ASCII alphanumerics is
/// reported as XX000.
pub fn intern_code(c: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static CODES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    if c.len() != 5 || !c.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return code::INTERNAL_ERROR;
    }
    let Ok(mut set) = CODES.get_or_init(Default::default).lock() else {
        return code::INTERNAL_ERROR;
    };
    if let Some(k) = set.get(c) {
        return k;
    }
    let k: &'static str = Box::leak(c.to_string().into_boxed_str());
    set.insert(k);
    k
}

/// An error that reaches a client as an ErrorResponse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgError {
    pub code: &'static str,
    /// What the client sees.
    pub message: String,
    /// What only the log sees (worker addresses, io error text).
    pub detail: Option<String>,
}

impl SgError {
    pub fn new(code: &'static str, message: impl Into<String>) -> SgError {
        SgError {
            code,
            message: message.into(),
            detail: None,
        }
    }

    pub fn unsupported(what: impl fmt::Display) -> SgError {
        SgError::new(
            code::FEATURE_NOT_SUPPORTED,
            format!("shardgate does not support {what}"),
        )
    }

    pub fn syntax(message: impl Into<String>) -> SgError {
        SgError::new(code::SYNTAX_ERROR, message)
    }

    pub fn protocol(message: impl Into<String>) -> SgError {
        SgError::new(code::PROTOCOL_VIOLATION, message)
    }

    pub fn internal(message: impl Into<String>) -> SgError {
        SgError::new(code::INTERNAL_ERROR, message)
    }

    /// A worker could not be reached or broke mid-statement: the client gets a generic text,
    /// the log gets the cause.
    pub fn worker(node: &str, detail: impl fmt::Display) -> SgError {
        SgError {
            code: code::CONNECTION_FAILURE,
            message: format!("lost connection to worker node \"{node}\""),
            detail: Some(detail.to_string()),
        }
    }

    pub fn with_detail(mut self, detail: impl fmt::Display) -> SgError {
        self.detail = Some(detail.to_string());
        self
    }
}

impl fmt::Display for SgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SgError {}

pub type SgResult<T> = Result<T, SgError>;
