//! A failed call, typed by its kind: retrying helps for all but [`FaultKind::Permanent`].
//! A leaf: the ports (registry, queue) and the report say what failed with it, and
//! [`crate::error`] builds an invocation's error on it.

/// What kind of failure a call met; it decides whether trying again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Throttling (ThrottlingException, 429, an upstream's too-many-requests).
    Throttled,
    /// The service failed (5xx, ServerException).
    Server,
    /// No answer: connection refused or closed, a response that could not be read.
    Transport,
    /// The SDK's attempt or operation timeout.
    Timeout,
    /// Cut at the invocation's deadline ([`crate::registry::deadline`]).
    Deadline,
    /// Retrying cannot help (access denied, invalid parameters, …).
    Permanent,
}

/// A failed call, as far as the caller needs to know it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Fault {
    pub kind: FaultKind,
    /// ECR's error code, or the kind of transport failure.
    pub code: String,
    pub message: String,
}

impl Fault {
    pub fn new(kind: FaultKind, code: impl Into<String>, message: impl Into<String>) -> Fault {
        Fault { kind, code: code.into(), message: message.into() }
    }

    /// Whether trying again later can help.
    pub fn retryable(&self) -> bool {
        self.kind != FaultKind::Permanent
    }
}
