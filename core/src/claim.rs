//! What a claim asks of a queue: the order it takes jobs in ([`ClaimOrder`])
//! and the kinds it takes ([`KindFilter`]). One home for both durable
//! queues: the in-memory model and `pjp-postgres` mean the same by them.

/// The order a queue hands jobs out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ClaimOrder {
    /// Finish proofs, not just jobs: priority, then the oldest batch (a batch
    /// number or deadline), then the round closest to the final proof (depth
    /// 0 is the final proof), then age. Jobs that set neither batch nor
    /// depth go by priority, then age. The default.
    #[default]
    ProofFirst,
    /// Priority, then age: a plain FIFO queue, blind to batches and rounds
    /// (a parent made claimable by its last child waits behind everything
    /// queued before it).
    Fifo,
}

/// The kinds a picker takes. `K` is how a queue names a kind
/// ([`JobKind`](crate::JobKind) in memory, `String` in PostgreSQL).
///
/// ```
/// use pjp_core::{JobKind, KindFilter};
///
/// let kind = |k| JobKind::new(k).unwrap_or_default();
/// let provers = KindFilter::except([kind("aggregate")]);
/// assert!(provers.admits(&kind("basic")) && !provers.admits(&kind("aggregate")));
/// assert!(KindFilter::only(Vec::<JobKind>::new()).admits(&kind("anything")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum KindFilter<K> {
    /// Every kind.
    #[default]
    Every,
    /// These kinds, in order of preference.
    Only(Vec<K>),
    /// Every kind but these.
    Except(Vec<K>),
}

impl<K: PartialEq> KindFilter<K> {
    /// These kinds, in order of preference; an empty list means every kind.
    pub fn only(kinds: impl IntoIterator<Item = K>) -> Self {
        let kinds: Vec<K> = kinds.into_iter().collect();
        if kinds.is_empty() {
            Self::Every
        } else {
            Self::Only(kinds)
        }
    }

    /// Every kind but these; an empty list means every kind.
    pub fn except(kinds: impl IntoIterator<Item = K>) -> Self {
        let kinds: Vec<K> = kinds.into_iter().collect();
        if kinds.is_empty() {
            Self::Every
        } else {
            Self::Except(kinds)
        }
    }

    /// Whether a job of `kind` may be handed to this picker.
    pub fn admits(&self, kind: &K) -> bool {
        match self {
            Self::Every => true,
            Self::Only(kinds) => kinds.contains(kind),
            Self::Except(kinds) => !kinds.contains(kind),
        }
    }
}
