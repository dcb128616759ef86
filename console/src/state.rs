//! [`Console`]: what every handler shares (the queue, the configuration, the
//! per-process tokens, the workers seen running each job).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pjp_postgres::{KindCounts, PgQueue, QueueError};

use crate::config::ConsoleConfig;
use crate::error::ConsoleError;

/// The most jobs whose worker the console remembers.
const SEEN_CAP: usize = 200_000;

/// How long the console remembers which worker ran a job: the timeline's
/// longest window.
const SEEN_FOR: Duration = Duration::from_secs(3_600);

/// The shared state of the console's handlers.
#[derive(Clone)]
pub(crate) struct Console {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) queue: PgQueue,
    pub(crate) config: ConsoleConfig,
    /// Carried by every form; compared on every POST.
    pub(crate) csrf: String,
    /// The value of the session cookie a login sets.
    pub(crate) session: String,
    /// Job id → the worker last seen holding it: a finished row keeps no
    /// owner, so the timeline attributes finished jobs from this.
    seen: Mutex<HashMap<i64, (String, Instant)>>,
    /// The per-kind counts (a scan of the table) and until when they are
    /// reused: ten times as long as the scan took, so a large table is not
    /// scanned on every refresh. Every action forgets them.
    counts: Mutex<Option<(Instant, Vec<KindCounts>)>>,
}

impl Console {
    pub(crate) fn new(queue: PgQueue, config: ConsoleConfig) -> Result<Self, ConsoleError> {
        Ok(Self {
            inner: Arc::new(Inner {
                queue,
                config,
                csrf: random_token()?,
                session: random_token()?,
                seen: Mutex::new(HashMap::new()),
                counts: Mutex::new(None),
            }),
        })
    }

    pub(crate) fn queue(&self) -> &PgQueue {
        &self.inner.queue
    }

    pub(crate) fn config(&self) -> &ConsoleConfig {
        &self.inner.config
    }

    /// Jobs per queue, kind, class and status: fresh, or from the last scan
    /// while it is recent enough (see [`Inner::counts`]).
    pub(crate) async fn kind_counts(&self) -> Result<Vec<KindCounts>, QueueError> {
        if let Ok(cached) = self.inner.counts.lock()
            && let Some((until, counts)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(counts.clone());
        }
        let started = Instant::now();
        let counts = self.queue().kind_counts().await?;
        let took = started.elapsed();
        if let Ok(mut cached) = self.inner.counts.lock() {
            *cached = Some((Instant::now() + took * 10, counts.clone()));
        }
        Ok(counts)
    }

    /// Forgets the cached counts (after a write).
    pub(crate) fn forget_counts(&self) {
        if let Ok(mut cached) = self.inner.counts.lock() {
            *cached = None;
        }
    }

    /// Remembers that `owner` held job `id` now.
    pub(crate) fn saw<'a>(&self, held: impl IntoIterator<Item = (i64, &'a str)>) {
        let Ok(mut seen) = self.inner.seen.lock() else {
            return;
        };
        let now = Instant::now();
        for (id, owner) in held {
            match seen.get_mut(&id) {
                Some(entry) if entry.0 == owner => entry.1 = now,
                _ => {
                    seen.insert(id, (owner.to_owned(), now));
                }
            }
        }
        if seen.len() > SEEN_CAP {
            seen.retain(|_, (_, at)| now.duration_since(*at) < SEEN_FOR);
            if seen.len() > SEEN_CAP {
                seen.clear();
            }
        }
    }

    /// The worker last seen holding job `id`.
    pub(crate) fn seen_owner(&self, id: i64) -> Option<String> {
        let seen = self.inner.seen.lock().ok()?;
        seen.get(&id).map(|(owner, _)| owner.clone())
    }
}

/// 32 random bytes from the operating system, as hex.
fn random_token() -> Result<String, ConsoleError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ConsoleError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time that does not depend on where they differ.
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }

    #[test]
    fn tokens_are_random_hex() -> Result<(), ConsoleError> {
        let (a, b) = (random_token()?, random_token()?);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        Ok(())
    }
}
