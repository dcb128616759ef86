//! [`BoxError`]: a boxed picker's or saver's error, with its class.

use std::error::Error;
use std::fmt;

use crate::{ErrorClass, JobId};

/// The error of a [`BoxPicker`](super::BoxPicker) or
/// [`BoxSaver`](super::BoxSaver): the concrete error, boxed, and the
/// [`ErrorClass`] its picker or saver gave it when it happened.
///
/// The class travels with the error, so the runner treats a boxed error
/// exactly as the unboxed one: nothing is re-classified by downcasting or by
/// reading the message.
///
/// ```
/// use pjp_core::ErrorClass;
/// use pjp_core::boxed::BoxError;
///
/// let error = BoxError::new(ErrorClass::Transient, std::io::Error::other("connection reset"));
/// assert_eq!(error.class(), ErrorClass::Transient);
/// assert_eq!(error.to_string(), "connection reset");
/// assert!(error.get_ref().downcast_ref::<std::io::Error>().is_some());
/// ```
pub struct BoxError {
    class: ErrorClass,
    inner: Box<dyn Error + Send + Sync>,
}

impl BoxError {
    /// Boxes `error` with its class.
    pub fn new(class: ErrorClass, error: impl Into<Box<dyn Error + Send + Sync>>) -> Self {
        Self {
            class,
            inner: error.into(),
        }
    }

    /// What the error means for the job, as its picker or saver classified it.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The concrete error.
    pub fn get_ref(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.inner
    }

    /// The concrete error, unboxed from this one.
    pub fn into_inner(self) -> Box<dyn Error + Send + Sync> {
        self.inner
    }
}

impl fmt::Debug for BoxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxError")
            .field("class", &self.class)
            .field("error", &self.inner)
            .finish()
    }
}

impl fmt::Display for BoxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The concrete error speaks for itself; the box adds nothing to read.
        fmt::Display::fmt(&self.inner, f)
    }
}

impl Error for BoxError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.inner.source()
    }
}

/// A boxed picker or saver was handed the metadata of a job that came from a
/// picker of another type: a wiring mistake (two queues mixed in one
/// pipeline). The job is left alone, and the error is
/// [`ErrorClass::Permanent`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "job {job}: its metadata is a `{found}`, but this {side} takes `{expected}` (jobs of two queues mixed?)"
)]
pub struct ForeignMeta {
    /// The job.
    pub job: JobId,
    /// The metadata type the boxed picker or saver takes.
    pub expected: &'static str,
    /// The metadata type the job carried.
    pub found: &'static str,
    /// `"picker"` or `"saver"`.
    pub side: &'static str,
}

impl ForeignMeta {
    pub(super) fn boxed(self) -> BoxError {
        BoxError::new(ErrorClass::Permanent, self)
    }
}
