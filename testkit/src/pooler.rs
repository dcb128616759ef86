//! A PgBouncer in transaction-pooling mode in front of the test server
//! (feature `postgres`): to run a queue's tests through a connection pooler.
//!
//! [`PgBouncer::start`] writes a `pgbouncer.ini` and a user list to a fresh
//! temporary folder (`auth_type = trust`, `pool_mode = transaction`, a small
//! server pool so that clients really share server connections), starts
//! `pgbouncer` (found on `PATH` or at `/usr/sbin/pgbouncer`) on a free
//! loopback port in front of the test server ([`database_url`]), and waits
//! (bounded) until it accepts connections. Dropping it kills the process by
//! its PID and removes the folder.
//!
//! Without a `pgbouncer` binary it returns `None` after saying so on stderr,
//! so that a developer machine without it skips the test; with `CI=true` a
//! missing binary fails the test instead (CI installs it).
//!
//! The harness assumes the test server trusts the test user on the loopback
//! address, as the test setup does: PgBouncer forwards no password.
//!
//! ```no_run
//! use pjp_testkit::pooler::PgBouncer;
//!
//! let Some(bouncer) = PgBouncer::start() else { return }; // skipped: no pgbouncer
//! let url = bouncer.url(); // the test database, through the pooler
//! # let _ = url;
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;

use crate::postgres::database_url;
use crate::wait::Wait;

/// Server connections per (database, user) pair unless told otherwise:
/// few, so that a test's clients share them the way a fleet's do.
pub const DEFAULT_POOL_SIZE: u32 = 4;

/// How long [`PgBouncer::start`] waits for it to accept connections.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Why PgBouncer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PoolerError {
    /// No `pgbouncer` on `PATH` nor at `/usr/sbin/pgbouncer`.
    #[error("no pgbouncer binary on PATH or at /usr/sbin/pgbouncer (Debian package `pgbouncer`)")]
    Missing,
    /// The test server's URL does not parse.
    #[error("the test database URL does not parse: {0}")]
    Url(#[from] sqlx::Error),
    /// Writing its configuration or starting it failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: io::Error,
    },
    /// It exited, or did not accept connections in time.
    #[error("pgbouncer did not start: {why}; its log:\n{log}")]
    NotStarted {
        /// What went wrong.
        why: String,
        /// What it wrote.
        log: String,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> PoolerError {
    let what = what.into();
    move |source| PoolerError::Io { what, source }
}

/// A running PgBouncer in transaction-pooling mode in front of the test
/// server, killed (by PID) when dropped.
pub struct PgBouncer {
    child: Child,
    port: u16,
    dir: PathBuf,
    user: String,
    database: String,
}

impl PgBouncer {
    /// Starts one with [`DEFAULT_POOL_SIZE`] server connections, or returns
    /// `None` (after saying why on stderr) when there is no `pgbouncer`
    /// binary and `CI` is not `true`.
    ///
    /// # Panics
    ///
    /// When it cannot be started (or is missing under `CI=true`): the test
    /// fails with the reason and PgBouncer's log.
    pub fn start() -> Option<Self> {
        Self::start_with_pool_size(DEFAULT_POOL_SIZE)
    }

    /// [`start`](Self::start) with `pool_size` server connections per
    /// (database, user) pair.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_with_pool_size(pool_size: u32) -> Option<Self> {
        match Self::try_start(pool_size) {
            Ok(bouncer) => Some(bouncer),
            Err(PoolerError::Missing) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!(
                    "skipped: {} (install it to run the tests through a connection pooler; CI=true makes this a failure)",
                    PoolerError::Missing
                );
                None
            }
            Err(error) => panic!("{error}"),
        }
    }

    /// Starts one with `pool_size` server connections per (database, user)
    /// pair in front of the test server ([`database_url`]).
    ///
    /// # Errors
    ///
    /// [`PoolerError::Missing`] without a `pgbouncer` binary; the others
    /// when it cannot be configured or does not start.
    pub fn try_start(pool_size: u32) -> Result<Self, PoolerError> {
        let binary = find_binary().ok_or(PoolerError::Missing)?;
        let server = PgConnectOptions::from_str(&database_url())?;
        let user = server.get_username().to_owned();
        let database = server.get_database().unwrap_or(&user).to_owned();
        let dir = fresh_dir()?;
        let port = free_port()?;
        let mut dir_guard = DirGuard(Some(dir.clone()));
        let ini = dir.join("pgbouncer.ini");
        let users = dir.join("userlist.txt");
        fs::write(&users, format!("\"{user}\" \"\"\n"))
            .map_err(io_error("writing pgbouncer's user list"))?;
        fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={host} port={server_port}\n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir =\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = {pool_size}\n\
                 max_client_conn = 2000\n",
                host = server.get_host(),
                server_port = server.get_port(),
                users = users.display(),
            ),
        )
        .map_err(io_error("writing pgbouncer.ini"))?;
        let log_path = dir.join("pgbouncer.log");
        let log = fs::File::create(&log_path).map_err(io_error("creating pgbouncer's log"))?;
        let log_err = log
            .try_clone()
            .map_err(io_error("opening pgbouncer's log"))?;
        let mut command = Command::new(&binary);
        // PgBouncer refuses to run as root: it then drops to `nobody`, which
        // can read the folder (0755) and its files (0644).
        if running_as_root() {
            command.args(["-u", "nobody"]);
        }
        let child = command
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(io_error(format!("starting {}", binary.display())))?;
        dir_guard.0 = None;
        let mut bouncer = Self {
            child,
            port,
            dir,
            user,
            database,
        };
        bouncer.wait_until_accepting(&log_path)?;
        Ok(bouncer)
    }

    fn wait_until_accepting(&mut self, log: &Path) -> Result<(), PoolerError> {
        let port = self.port;
        let child = &mut self.child;
        let up = Wait::new("pgbouncer to accept connections")
            .limit(START_LIMIT)
            .every(Duration::from_millis(20))
            .try_until_some_blocking(|| {
                if let Ok(Some(status)) = child.try_wait() {
                    return Some(Err(format!("it exited ({status})")));
                }
                TcpStream::connect((Ipv4Addr::LOCALHOST, port))
                    .ok()
                    .map(|_| Ok(()))
            });
        let why = match up {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(why)) => why,
            Err(hung) => hung.to_string(),
        };
        Err(PoolerError::NotStarted {
            why,
            log: fs::read_to_string(log).unwrap_or_default(),
        })
    }

    /// The test database ([`database_url`]'s), through the pooler.
    pub fn url(&self) -> String {
        self.url_of(&self.database)
    }

    /// `database` on the test server, through the pooler.
    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{}@127.0.0.1:{}/{database}",
            self.user, self.port
        )
    }

    /// The port it listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBouncer")
            .field("pid", &self.child.id())
            .field("port", &self.port)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // By PID (`Child::kill` signals this process only), then reaped.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Removes a folder unless disarmed (a start that failed half-way).
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// `pgbouncer` on `PATH`, else `/usr/sbin/pgbouncer` (Debian installs it
/// there, off a normal user's `PATH`).
fn find_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("pgbouncer"));
    on_path
        .chain([PathBuf::from("/usr/sbin/pgbouncer")])
        .find(|path| path.is_file())
}

fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A fresh folder for its files, readable by everyone (PgBouncer may run
/// as `nobody`).
fn fresh_dir() -> Result<PathBuf, PoolerError> {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "pjp-pgbouncer-{}-{}-{:04x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        fastrand::u16(..)
    ));
    fs::create_dir_all(&dir).map_err(io_error(format!("creating {}", dir.display())))?;
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .map_err(io_error(format!("opening {} to pgbouncer", dir.display())))?;
    }
    Ok(dir)
}

/// A loopback port free right now (the OS picks it; PgBouncer binds it a
/// moment later).
fn free_port() -> Result<u16, PoolerError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(io_error("finding a free loopback port"))?;
    Ok(listener
        .local_addr()
        .map_err(io_error("finding a free loopback port"))?
        .port())
}
