//! [`Waiters`]: pickers waiting at the claim gate, so that the one let in
//! claims for them too.
//!
//! With [`WorkerConfig::adaptive_claims`](crate::WorkerConfig::adaptive_claims),
//! pickers queue at the gate while the window is full. Each waiting picker
//! has already been given room for its batch by its runner, so the picker
//! that enters claims its own batch plus the batches of those waiting (first
//! come, first served, up to [`COALESCED`] jobs in all) in one statement, and
//! hands each its share. A storm's claims then take more jobs each and
//! there are fewer of them: the cost that grows with claim statements (a
//! round trip through the pooler, planning, one index descent per hot chunk)
//! is paid once for several pickers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

/// The most jobs one claim takes for the picker let in and those waiting
/// (or the picker's own batch, when larger).
pub(crate) const COALESCED: usize = 32;

/// A worker's lines of waiting pickers, one per claim (queue, kinds,
/// classes, order): only pickers of the same claim can share one.
pub(crate) struct Lines<T> {
    lines: Mutex<HashMap<String, Arc<Waiters<T>>>>,
}

impl<T> Default for Lines<T> {
    fn default() -> Self {
        Self {
            lines: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Lines<T> {
    /// The line of the pickers making the claim `shape`.
    pub(crate) fn line(&self, shape: &str) -> Arc<Waiters<T>> {
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        match lines.get(shape) {
            Some(line) => Arc::clone(line),
            None => {
                let line = Arc::new(Waiters::default());
                lines.insert(shape.to_owned(), Arc::clone(&line));
                line
            }
        }
    }
}

/// A waiting picker: how many jobs it asked for, and where its share goes.
pub(crate) struct Waiter<T> {
    id: u64,
    pub(crate) want: usize,
    pub(crate) share: oneshot::Sender<Vec<T>>,
}

/// The pickers waiting at one picker's gate, in the order they came.
pub(crate) struct Waiters<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    next_id: u64,
    waiting: VecDeque<Waiter<T>>,
}

impl<T> Default for Waiters<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                next_id: 0,
                waiting: VecDeque::new(),
            }),
        }
    }
}

impl<T> std::fmt::Debug for Waiters<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiters").finish_non_exhaustive()
    }
}

impl<T> Waiters<T> {
    fn state(&self) -> std::sync::MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Puts a picker wanting `want` jobs in line; its share arrives on the
    /// receiver if a claim takes it. Dropped, the ticket leaves the line.
    pub(crate) fn wait(&self, want: usize) -> (Ticket<'_, T>, oneshot::Receiver<Vec<T>>) {
        let (share, receiver) = oneshot::channel();
        let mut state = self.state();
        let id = state.next_id;
        state.next_id += 1;
        state.waiting.push_back(Waiter { id, want, share });
        (Ticket { waiters: self, id }, receiver)
    }

    /// Takes the pickers a claim of `own` jobs serves too: from the front
    /// of the line, while the claim stays within [`COALESCED`] jobs.
    pub(crate) fn serve(&self, own: usize) -> Vec<Waiter<T>> {
        let mut state = self.state();
        let mut total = own;
        let mut served = Vec::new();
        while let Some(next) = state.waiting.front() {
            if total + next.want > COALESCED.max(own) {
                break;
            }
            total += next.want;
            served.extend(state.waiting.pop_front());
        }
        served
    }

    /// Leaves the line; false when a claim took this picker already (its
    /// share is on the way).
    fn leave(&self, id: u64) -> bool {
        let mut state = self.state();
        match state.waiting.iter().position(|w| w.id == id) {
            Some(at) => {
                state.waiting.remove(at);
                true
            }
            None => false,
        }
    }
}

/// A picker's place in line; [`claim_self`](Self::claim_self) once it
/// entered the gate, or dropped, it leaves the line.
pub(crate) struct Ticket<'a, T> {
    waiters: &'a Waiters<T>,
    id: u64,
}

impl<T> Ticket<'_, T> {
    /// The picker entered the gate: true when it claims for itself (it
    /// left the line), false when a claim took it while it waited (its
    /// share is on the way).
    pub(crate) fn claim_self(self) -> bool {
        // Dropping it then finds nothing left to remove.
        self.waiters.leave(self.id)
    }
}

impl<T> Drop for Ticket<'_, T> {
    fn drop(&mut self) {
        self.waiters.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_serves_the_line_in_order_within_the_bound() {
        assert_eq!(COALESCED, 32);
        let waiters = Waiters::<u32>::default();
        let (_a, _ra) = waiters.wait(8);
        let (_b, _rb) = waiters.wait(16);
        let (_c, _rc) = waiters.wait(8);
        // 8 own + 8 + 16 = 32; the next 8 would pass it.
        let served = waiters.serve(8);
        assert_eq!(served.iter().map(|w| w.want).collect::<Vec<_>>(), [8, 16]);
        // The third is next in line.
        let served = waiters.serve(8);
        assert_eq!(served.iter().map(|w| w.want).collect::<Vec<_>>(), [8]);
        assert!(waiters.serve(8).is_empty());
        // A claim of the bound or more serves nobody.
        let (_d, _rd) = waiters.wait(1);
        assert!(waiters.serve(32).is_empty());
    }

    #[test]
    fn a_picker_that_leaves_is_not_served_and_one_served_knows_it() {
        let waiters = Waiters::<u32>::default();
        let (gone, _r) = waiters.wait(8);
        let (served, mut share) = waiters.wait(8);
        let (entered, _r3) = waiters.wait(8);
        drop(gone);
        let taken = waiters.serve(8);
        assert_eq!(taken.len(), 2, "the one that left is not served");
        // The one served finds out when it enters the gate; its share
        // arrives on its receiver.
        assert!(!served.claim_self());
        assert!(!entered.claim_self());
        for waiter in taken {
            let _ = waiter.share.send(vec![1]);
        }
        assert_eq!(share.try_recv().ok(), Some(vec![1]));
        // One that enters before a claim takes it claims for itself.
        let (alone, _r4) = waiters.wait(8);
        assert!(alone.claim_self());
        assert!(waiters.serve(8).is_empty());
    }
}
