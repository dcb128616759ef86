//! [`LatencyProxy`]: a TCP proxy on 127.0.0.1 that adds a one-way delay to
//! every byte and can cut its connections, to put a real slow link (or a
//! flaky one) between a worker and its database in a test or a benchmark.
//!
//! Unlike [`Latent`](crate::Latent), which models round trips inside one
//! process, the proxy delays the real protocol: a PostgreSQL query pays the
//! delay on every message it exchanges, connection set-up included, exactly
//! as over a cross-region link.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A TCP proxy with a configurable one-way latency that can cut or refuse
/// connections. Runs on the current tokio runtime; stops (closing every
/// connection) when dropped.
///
/// Each direction of each connection is delayed by the one-way latency, so a
/// request and its reply cost twice that, and bytes sent back to back stay
/// back to back (the delay is a pipe's length, not a per-message toll).
///
/// ```no_run
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// use std::time::Duration;
/// use pjp_testkit::LatencyProxy;
///
/// // PostgreSQL behind a 50 ms one-way (100 ms round-trip) link.
/// let proxy = LatencyProxy::start("127.0.0.1:5432".parse().unwrap(), Duration::from_millis(50)).await?;
/// let url = format!("postgres://root@{}/test", proxy.addr());
/// // ... run a worker against `url` ...
/// proxy.cut(); // every open connection drops, as in a network partition
/// proxy.refuse(true); // and new ones are refused until `refuse(false)`
/// # let _ = url; Ok(()) }
/// ```
#[derive(Debug)]
pub struct LatencyProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    latency_ns: AtomicU64,
    refusing: AtomicBool,
    open: AtomicUsize,
    accepted: AtomicU64,
    cuts: AtomicU64,
    /// Bumped by [`LatencyProxy::cut`]; every connection task watches it.
    cut: watch::Sender<u64>,
}

impl Shared {
    fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_ns.load(Ordering::Relaxed))
    }
}

impl LatencyProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to
    /// `upstream`, `one_way` late in each direction.
    ///
    /// # Errors
    ///
    /// If the listening socket cannot be bound.
    pub async fn start(upstream: SocketAddr, one_way: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            latency_ns: AtomicU64::new(nanos(one_way)),
            refusing: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            cuts: AtomicU64::new(0),
            cut: watch::channel(0).0,
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Changes the one-way latency for bytes read from now on.
    pub fn set_latency(&self, one_way: Duration) {
        self.shared
            .latency_ns
            .store(nanos(one_way), Ordering::Relaxed);
    }

    /// The one-way latency.
    pub fn latency(&self) -> Duration {
        self.shared.latency()
    }

    /// Closes every open connection at once, both sides, and returns how many
    /// there were. New connections are still accepted (see
    /// [`refuse`](Self::refuse)).
    pub fn cut(&self) -> usize {
        let open = self.shared.open.load(Ordering::Relaxed);
        self.shared.cuts.fetch_add(open as u64, Ordering::Relaxed);
        self.shared.cut.send_modify(|n| *n = n.wrapping_add(1));
        open
    }

    /// While `true`, new connections are closed as soon as they are accepted,
    /// as during an outage.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::Relaxed);
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::Relaxed)
    }

    /// Connections accepted and forwarded since the start.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed by [`cut`](Self::cut) since the start.
    pub fn cut_connections(&self) -> u64 {
        self.shared.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        if shared.refusing.load(Ordering::Relaxed) {
            drop(client);
            continue;
        }
        tokio::spawn(forward(client, Arc::clone(&shared)));
    }
}

/// Counts an open connection for as long as it lives.
struct Open(Arc<Shared>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn forward(client: TcpStream, shared: Arc<Shared>) {
    let mut cut = shared.cut.subscribe();
    let Ok(server) = TcpStream::connect(shared.upstream).await else {
        return; // the client sees its connection close
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    shared.accepted.fetch_add(1, Ordering::Relaxed);
    shared.open.fetch_add(1, Ordering::Relaxed);
    let _open = Open(Arc::clone(&shared));
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let both = async {
        tokio::join!(
            pipe(client_read, server_write, &shared),
            pipe(server_read, client_write, &shared)
        )
    };
    tokio::select! {
        biased;
        _ = cut.changed() => {} // dropping the halves closes both sockets
        _ = both => {}
    }
}

/// Copies one direction: each chunk is written `latency` after it was read.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    shared: &Shared,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let due = Instant::now() + shared.latency();
                    if tx.send((due, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer once it has delivered what is queued.
    };
    let write = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
