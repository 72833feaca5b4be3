//! Listener: one mio event loop thread owns the StatsD sockets.
//!
//! UDP and unix datagrams are drained in `recvmmsg` batches into one reused set of
//! buffers and parsed in place; TCP connections are newline-delimited streams with
//! a line-length limit. A fixed number of batches is drained per wake-up so that
//! a UDP flood cannot starve TCP clients; a socket that still has data is polled
//! again at once. A [`mio::Waker`] stops the loop.
//!
//! May import: vocab, sys, model, parser, ingest.

mod bind;
pub mod recv;
pub mod stats;
mod stream;

use crate::ingest::Ingester;
pub use crate::sys::force_read_buffer;
pub use bind::{bind, BindError, ListenOptions, Sockets};
use stream::{feed, Conn, Stream};

use crate::ingest::stats::ListenerKind;
use mio::net::{TcpListener, UdpSocket, UnixDatagram, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};
use recv::{RecvBatch, MAX_DATAGRAM};
use stats::ListenerStats;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const UDP: Token = Token(0);
const TCP: Token = Token(1);
const UNIXGRAM: Token = Token(2);
const WAKE: Token = Token(3);
const UNIX: Token = Token(4);
const FIRST_CONN: usize = 16;

/// Datagrams per `recvmmsg` call.
const BATCH: usize = 64;
/// `recvmmsg` calls per socket per wake-up before other sockets get a turn.
const BATCHES_PER_TURN: usize = 32;

/// The event loop; [`Listener::run`] blocks until a [`Stopper`] from
/// [`Listener::stopper`] stops it.
pub struct Listener {
    poll: Poll,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    udp: Option<UdpSocket>,
    tcp: Option<TcpListener>,
    unixgram: Option<(UnixDatagram, PathBuf)>,
    unix: Option<(UnixListener, PathBuf)>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    open: usize,
    batch: RecvBatch,
    /// The UDP socket's kernel drop count already added to the self-metric.
    kernel_drops: u32,
    read_buf: Vec<u8>,
    opts: ListenOptions,
    ingester: Ingester,
    /// The store's shared listener counters.
    stats: Arc<ListenerStats>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("open", &self.open)
            .finish()
    }
}

impl Listener {
    /// Register the sockets with a new poller.
    pub fn new(sockets: Sockets, ingester: Ingester, opts: ListenOptions) -> io::Result<Self> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let mut udp = sockets.udp.map(UdpSocket::from_std);
        let mut tcp = sockets.tcp.map(TcpListener::from_std);
        let mut unixgram = sockets
            .unixgram
            .map(|(s, p)| (UnixDatagram::from_std(s), p));
        if let Some(s) = &mut udp {
            poll.registry().register(s, UDP, Interest::READABLE)?;
        }
        if let Some(s) = &mut tcp {
            poll.registry().register(s, TCP, Interest::READABLE)?;
        }
        if let Some((s, _)) = &mut unixgram {
            poll.registry().register(s, UNIXGRAM, Interest::READABLE)?;
        }
        let mut unix = sockets.unix.map(|(s, p)| (UnixListener::from_std(s), p));
        if let Some((s, _)) = &mut unix {
            poll.registry().register(s, UNIX, Interest::READABLE)?;
        }
        Ok(Self {
            poll,
            waker,
            stop: Arc::new(AtomicBool::new(false)),
            udp,
            tcp,
            unixgram,
            unix,
            conns: Vec::new(),
            free: Vec::new(),
            open: 0,
            batch: RecvBatch::new(BATCH, MAX_DATAGRAM),
            kernel_drops: 0,
            read_buf: vec![0; 64 * 1024],
            opts,
            stats: ingester.store().metrics().shared(),
            ingester,
        })
    }

    /// A handle that stops the loop: set the flag, then wake.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            waker: Arc::clone(&self.waker),
            stop: Arc::clone(&self.stop),
        }
    }

    /// Run until stopped.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut udp_pending = false;
        let mut unix_pending = false;
        loop {
            let timeout = if udp_pending || unix_pending {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.ingester.store().clock.tick();
            // Acquire: pairs with the Release store in `Stopper::stop`.
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    UDP => udp_pending = true,
                    UNIXGRAM => unix_pending = true,
                    TCP => self.accept_tcp(),
                    UNIX => self.accept_unix(),
                    WAKE => {}
                    Token(t) => self.conn_ready(t),
                }
            }
            if udp_pending {
                udp_pending = self.drain(ListenerKind::Udp);
            }
            if unix_pending {
                unix_pending = self.drain(ListenerKind::Unixgram);
            }
            self.ingester.flush_stats();
        }
        let files = [
            &self.unixgram.as_ref().map(|u| &u.1),
            &self.unix.as_ref().map(|u| &u.1),
        ];
        for path in files.into_iter().flatten() {
            if let Err(e) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a unix socket file");
            }
        }
        self.ingester.flush_stats();
        Ok(())
    }

    /// Receive up to `BATCHES_PER_TURN` batches; true if the socket may have more.
    fn drain(&mut self, kind: ListenerKind) -> bool {
        let fd = match kind {
            ListenerKind::Udp => self.udp.as_ref().map(|s| s.as_raw_fd()),
            _ => self.unixgram.as_ref().map(|(s, _)| s.as_raw_fd()),
        };
        let Some(fd) = fd else { return false };
        if kind == ListenerKind::Udp {
            self.note_kernel_drops(fd);
        }
        for _ in 0..BATCHES_PER_TURN {
            match self.batch.recv(fd) {
                Ok(n) => {
                    for i in 0..n {
                        let (msg, truncated) = self.batch.message(i);
                        if truncated {
                            // Relaxed: a self-metric counter.
                            self.stats.recv_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        self.ingester.ingest_packet(kind, msg);
                    }
                    if n < BATCH {
                        // The queue is (very likely) empty; edge-triggered mio will tell
                        // us when more arrives only after a WouldBlock, so check once more.
                        continue;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.stats.recv_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "receive error");
                    return false;
                }
            }
        }
        true
    }

    /// Add the growth of the UDP socket's kernel drop count to the self-metric.
    fn note_kernel_drops(&mut self, fd: std::os::fd::RawFd) {
        if let Some(v) = recv::kernel_drops(fd) {
            if v > self.kernel_drops {
                // Relaxed: a self-metric counter.
                self.stats
                    .udp_kernel_drops
                    .fetch_add(u64::from(v - self.kernel_drops), Ordering::Relaxed);
                self.kernel_drops = v;
            }
        }
    }

    fn accept_tcp(&mut self) {
        loop {
            let Some(listener) = &self.tcp else { return };
            match listener.accept() {
                Ok((stream, _)) => self.add_conn(Stream::Tcp(stream)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.accept_failed(&e),
            }
        }
    }

    fn accept_unix(&mut self) {
        loop {
            let Some((listener, _)) = &self.unix else {
                return;
            };
            match listener.accept() {
                Ok((stream, _)) => self.add_conn(Stream::Unix(stream)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.accept_failed(&e),
            }
        }
    }

    fn accept_failed(&self, e: &io::Error) {
        // Out of descriptors, for instance: log and wait for the next event.
        tracing::warn!(error = %e, "accepting a StatsD connection failed");
        // Relaxed: a self-metric counter.
        self.stats.tcp_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Take a new stream connection, or close it at once past the limit.
    fn add_conn(&mut self, mut stream: Stream) {
        let stats = &self.stats;
        if self.open >= self.opts.tcp_max_connections {
            // Relaxed: self-metric counters.
            stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let slot = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if let Err(e) = stream.register(self.poll.registry(), Token(FIRST_CONN + slot)) {
            tracing::warn!(error = %e, "could not register a StatsD connection");
            stats.tcp_errors.fetch_add(1, Ordering::Relaxed);
            self.free.push(slot);
            return;
        }
        if let Some(c) = self.conns.get_mut(slot) {
            *c = Some(Conn::new(stream));
        }
        self.open += 1;
        stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
        stats.tcp_open.store(self.open as u64, Ordering::Relaxed);
    }

    fn conn_ready(&mut self, token: usize) {
        let Some(slot) = token.checked_sub(FIRST_CONN) else {
            return;
        };
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return;
        };
        let max_line = self.opts.tcp_max_line;
        let mut close = false;
        loop {
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    // End of stream: a last line without newline still counts.
                    let before = self.ingester.local.lines;
                    let ingester = &mut self.ingester;
                    stream::finish(conn, &mut |b| ingester.ingest_lines(b));
                    ingester.local.lines_since(conn.stream.kind(), before);
                    close = true;
                    break;
                }
                Ok(n) => {
                    let data = &self.read_buf[..n];
                    self.ingester.local.packet(conn.stream.kind(), n);
                    let before = self.ingester.local.lines;
                    let ingester = &mut self.ingester;
                    let too_long = feed(conn, data, max_line, &mut |b| ingester.ingest_lines(b));
                    if too_long > 0 {
                        self.ingester.local.lines += too_long;
                    }
                    self.ingester.local.lines_since(conn.stream.kind(), before);
                    if too_long > 0 {
                        for _ in 0..too_long {
                            self.ingester
                                .local
                                .sample_error(crate::parser::ParseError::LineTooLong);
                        }
                        // Relaxed: a self-metric counter.
                        self.stats
                            .tcp_too_long
                            .fetch_add(too_long, Ordering::Relaxed);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!(error = %e, "TCP read error");
                    self.stats.tcp_errors.fetch_add(1, Ordering::Relaxed);
                    close = true;
                    break;
                }
            }
        }
        if close {
            self.close(slot);
        }
    }

    fn close(&mut self, slot: usize) {
        if let Some(Some(mut conn)) = self.conns.get_mut(slot).map(Option::take) {
            let _ = conn.stream.deregister(self.poll.registry());
            self.free.push(slot);
            self.open = self.open.saturating_sub(1);
            // Relaxed: a self-metric gauge.
            self.stats
                .tcp_open
                .store(self.open as u64, Ordering::Relaxed);
        }
    }
}

/// Stops a running [`Listener`] from another thread.
#[derive(Clone, Debug)]
pub struct Stopper {
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
}

impl Stopper {
    /// Ask the loop to stop; it finishes the current turn first.
    pub fn stop(&self) {
        // Release: the loop's Acquire load sees the flag once woken.
        self.stop.store(true, Ordering::Release);
        if let Err(e) = self.waker.wake() {
            tracing::warn!(error = %e, "could not wake the listener");
        }
    }
}
