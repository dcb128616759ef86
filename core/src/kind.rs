//! [`JobKind`]: what sort of job a job is (`basic`, `aggregate`, `leaf`…).

use std::fmt;

/// A job's kind, such as `basic`, `leaf` or `scheduler`: a worker's picker
/// names the kinds it serves ([`QueuePicker::kinds`](crate::memory::QueuePicker::kinds),
/// and the same in `pjp-postgres`). Kept inline (kinds are at most 64 bytes)
/// so that metadata carrying one stays `Copy`.
///
/// ```
/// use pjp_core::JobKind;
///
/// let kind = JobKind::new("aggregate").expect("at most 64 bytes");
/// assert_eq!(kind.as_str(), "aggregate");
/// assert_eq!(JobKind::default(), JobKind::none());
/// assert!(JobKind::new(&"k".repeat(65)).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobKind {
    len: u8,
    bytes: [u8; 64],
}

impl JobKind {
    /// The most bytes a kind has.
    pub const MAX_LEN: usize = 64;

    /// The kind `kind`, or `None` if it is longer than 64 bytes.
    pub fn new(kind: &str) -> Option<Self> {
        let len = u8::try_from(kind.len())
            .ok()
            .filter(|n| usize::from(*n) <= Self::MAX_LEN)?;
        let mut bytes = [0; 64];
        bytes[..kind.len()].copy_from_slice(kind.as_bytes());
        Some(Self { len, bytes })
    }

    /// No kind (`""`), the default.
    pub const fn none() -> Self {
        Self {
            len: 0,
            bytes: [0; 64],
        }
    }

    /// The kind as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl Default for JobKind {
    fn default() -> Self {
        Self::none()
    }
}

impl fmt::Debug for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
