//! One HTTP connection, watched: the client's address, the page it is being
//! sent (its place in the budget of pages in flight, given back once the last
//! chunk is encoded or the connection closes), and how long it has been unable
//! to write, so a client that stops reading is cut off instead of holding its
//! place forever.

use super::budget::Admission;
use std::io::IoSlice;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the server knows of one connection.
#[derive(Debug)]
pub struct Conn {
    /// The client's address.
    pub peer: IpAddr,
    /// Pages being sent on this connection (each holds its own place).
    pages: AtomicUsize,
    epoch: Instant,
    /// Milliseconds since `epoch` + 1 when a write last found the socket full
    /// and nothing has been written since; 0 when writes go through.
    blocked_since: AtomicU64,
    /// Told to close: its page's place is wanted by a client that reads.
    evict: tokio::sync::Notify,
}

impl Conn {
    /// A connection from `peer`.
    pub fn new(peer: IpAddr) -> Arc<Self> {
        Arc::new(Self {
            peer,
            pages: AtomicUsize::new(0),
            epoch: Instant::now(),
            blocked_since: AtomicU64::new(0),
            evict: tokio::sync::Notify::new(),
        })
    }

    /// A page starts to be sent; [`PagePlace`] ends it when dropped.
    pub fn start_page(self: &Arc<Self>, place: Admission) -> PagePlace {
        // Relaxed: a count read by the eviction check, which only needs to
        // see it eventually; the place itself is what bounds memory.
        self.pages.fetch_add(1, Ordering::Relaxed);
        PagePlace {
            conn: Arc::clone(self),
            _place: place,
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn write_blocked(&self) {
        let now = self.now_ms().saturating_add(1);
        // Relaxed: one connection's own flag, read by its own watchdog; a
        // moment's staleness only moves the cut-off by that moment.
        let _ = self
            .blocked_since
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn wrote(&self) {
        // Relaxed: see `write_blocked`.
        self.blocked_since.store(0, Ordering::Relaxed);
    }

    /// How long the connection has been holding a page it cannot write out.
    pub fn stuck_with_page(&self) -> Option<Duration> {
        // Relaxed: see `start_page`.
        if self.pages.load(Ordering::Relaxed) == 0 {
            return None;
        }
        // Relaxed: see `write_blocked`.
        let since = self.blocked_since.load(Ordering::Relaxed);
        (since != 0)
            .then(|| Duration::from_millis(self.now_ms().saturating_add(1).saturating_sub(since)))
    }

    /// Close this connection (its server task is told).
    pub fn evict(&self) {
        self.evict.notify_one();
    }

    /// Resolves once [`Conn::evict`] was called.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    /// Resolves once the connection has had data to write and no room for it
    /// for `limit`: the client stopped reading.
    pub async fn stalled(&self, limit: Duration) {
        let tick = (limit / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            // Relaxed: see `write_blocked`.
            let since = self.blocked_since.load(Ordering::Relaxed);
            let blocked_ms = self.now_ms().saturating_add(1).saturating_sub(since);
            if since != 0 && u128::from(blocked_ms) >= limit.as_millis() {
                return;
            }
        }
    }
}

/// A page's place among the pages in flight, and its count on its
/// connection: both given back when this is dropped (the page is out, or
/// abandoned with its connection).
#[derive(Debug)]
pub struct PagePlace {
    conn: Arc<Conn>,
    _place: Admission,
}

impl Drop for PagePlace {
    fn drop(&mut self) {
        // Relaxed: see `Conn::start_page`.
        self.conn.pages.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An I/O stream that reports its writes to its [`Conn`].
#[derive(Debug)]
pub struct Watched<I> {
    io: I,
    conn: Arc<Conn>,
}

impl<I> Watched<I> {
    /// Watch `io` for `conn`.
    pub fn new(io: I, conn: Arc<Conn>) -> Self {
        Self { io, conn }
    }

    fn seen<T>(&self, r: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match &r {
            Poll::Pending => self.conn.write_blocked(),
            Poll::Ready(_) => self.conn.wrote(),
        }
        r
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.seen(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.seen(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.seen(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.seen(r)
    }
}
