//! Small helpers for code that must survive what user code does: panics in
//! callbacks, poisoned locks.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, ignoring poisoning: the data behind the runner's locks are
/// counters and lists that a panic elsewhere cannot leave half-written.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Turns a caught panic payload into a message: the payload if it is a string,
/// a placeholder otherwise. For code that catches panics around components.
///
/// ```
/// let caught = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
/// assert_eq!(pjp_core::panic_message(caught.as_ref()), "boom 7");
/// ```
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs a user callback, turning a panic into its message.
pub(crate) fn guard<T>(callback: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(callback)).map_err(|payload| panic_message(payload.as_ref()))
}

/// Formats a user error; a `Display` that panics yields a placeholder.
pub(crate) fn describe(error: &dyn std::fmt::Display) -> String {
    guard(|| error.to_string()).unwrap_or_else(|message| format!("<Display panicked: {message}>"))
}
