//! The errors the fault wrappers inject.

use std::fmt;

/// A picker's or saver's error under [`Faulty`](super::Faulty): injected, or
/// the wrapped component's own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError<E> {
    /// An injected transient error (retryable).
    #[error("injected fault")]
    Injected,
    /// The backend is in an injected outage (retryable).
    #[error("injected outage: the backend is unreachable")]
    Outage,
    /// The wrapped component failed.
    #[error(transparent)]
    Inner(E),
}

impl<E> FaultError<E> {
    /// Whether the fault was injected (rather than the wrapped component's own).
    pub fn is_injected(&self) -> bool {
        matches!(self, Self::Injected | Self::Outage)
    }
}

/// An executor's error under [`FaultyExecutor`](super::FaultyExecutor).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExecFault<E> {
    /// An injected failure.
    Injected,
    /// The wrapped executor failed.
    Inner(E),
}

impl<E: fmt::Display> fmt::Display for ExecFault<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Injected => f.write_str("injected executor failure"),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: fmt::Display + fmt::Debug> std::error::Error for ExecFault<E> {}
