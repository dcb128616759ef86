//! [`ConsoleConfig`]: where the console listens, its admin token, and how it
//! reads the fleet.

use std::net::SocketAddr;
use std::time::Duration;

use pjp_postgres::redact_url;

/// Where the console listens unless told otherwise: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// How the console runs ([`router`](crate::router), [`serve`](crate::serve)).
///
/// ```
/// use pjp_console::ConsoleConfig;
///
/// let config = ConsoleConfig::new("postgres://app:s3cret@db/jobs").admin_token(Some("t0k".into()));
/// assert!(config.is_writable());
/// assert!(!format!("{config:?}").contains("s3cret"));
/// assert!(!format!("{config:?}").contains("t0k"));
/// ```
#[derive(Clone)]
#[must_use]
pub struct ConsoleConfig {
    pub(crate) database: String,
    pub(crate) admin_token: Option<String>,
    pub(crate) listen: SocketAddr,
    pub(crate) refresh: Duration,
    pub(crate) lease_ttl: Duration,
    pub(crate) page_size: i64,
    pub(crate) timeline_minutes: u32,
}

impl std::fmt::Debug for ConsoleConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleConfig")
            .field("database", &self.database)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "****"))
            .field("listen", &self.listen)
            .field("refresh", &self.refresh)
            .field("lease_ttl", &self.lease_ttl)
            .field("page_size", &self.page_size)
            .field("timeline_minutes", &self.timeline_minutes)
            .finish()
    }
}

impl ConsoleConfig {
    /// The defaults, for the queue at `database_url` (kept only redacted:
    /// it names the database in the pages' header).
    pub fn new(database_url: &str) -> Self {
        Self {
            database: redact_url(database_url),
            admin_token: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            refresh: Duration::from_secs(2),
            lease_ttl: Duration::from_secs(3),
            page_size: 50,
            timeline_minutes: 10,
        }
    }

    /// The token that unlocks writes (requeue, cancel, purge); `None` (the
    /// default) or an empty one makes the console read-only.
    pub fn admin_token(mut self, token: Option<String>) -> Self {
        self.admin_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Where [`serve`](crate::serve) listens (default [`DEFAULT_LISTEN`]).
    /// On a loopback address the console answers only requests whose
    /// `Host` is a loopback name.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// How often the overview refreshes itself (default 2 s, at least
    /// 500 ms).
    pub fn refresh(mut self, every: Duration) -> Self {
        self.refresh = every.max(Duration::from_millis(500));
        self
    }

    /// The workers' lease TTL (default 3 s, the queue's default): the last
    /// heartbeat of a worker is shown as its newest lease's expiry less
    /// this.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// Jobs per page of the job list (1..=1,000; default 50).
    pub fn page_size(mut self, size: i64) -> Self {
        self.page_size = size.clamp(1, 1_000);
        self
    }

    /// The timeline's default window in minutes (1..=60; default 10).
    pub fn timeline_minutes(mut self, minutes: u32) -> Self {
        self.timeline_minutes = minutes.clamp(1, 60);
        self
    }

    /// Whether writes are possible (an admin token is set).
    pub fn is_writable(&self) -> bool {
        self.admin_token.is_some()
    }

    /// The address [`serve`](crate::serve) listens on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen
    }
}
