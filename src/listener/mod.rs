//! Listener: one mio event loop thread owns the StatsD sockets.
//!
//! UDP and unix datagrams are drained in `recvmmsg` batches into one reused set of
//! buffers and parsed in place; TCP connections are newline-delimited streams with
//! a line-length limit. A fixed number of batches is drained per wake-up so that
//! a UDP flood cannot starve TCP clients; a socket that still has data is polled
//! again at once. A [`mio::Waker`] stops the loop.
//!
//! May import: vocab, sys, model, parser, ingest.

pub mod recv;

use crate::ingest::Ingester;
pub use crate::sys::force_read_buffer;
pub mod stats;

use crate::ingest::stats::ListenerKind;
use mio::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use recv::{RecvBatch, MAX_DATAGRAM};
use stats::ListenerStats;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
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

/// Listener settings.
#[derive(Clone, Debug)]
pub struct ListenOptions {
    /// UDP address (`--statsd.listen-udp`); `None` disables.
    pub udp: Option<SocketAddr>,
    /// TCP address (`--statsd.listen-tcp`); `None` disables.
    pub tcp: Option<SocketAddr>,
    /// Unix datagram socket path (`--statsd.listen-unixgram`); `None` disables.
    pub unixgram: Option<PathBuf>,
    /// Unix stream socket path (`--statsd.listen-unix`), newline-delimited like
    /// TCP; `None` disables.
    pub unix: Option<PathBuf>,
    /// Permission bits of the unix socket files.
    pub unixsocket_mode: u32,
    /// `SO_RCVBUF` for datagram sockets, in bytes; `None` keeps the OS default.
    pub read_buffer: Option<usize>,
    /// Longest TCP line buffered, in bytes (the parser's `max_line_length`).
    pub tcp_max_line: usize,
    /// Most TCP connections open at once.
    pub tcp_max_connections: usize,
    /// UDP sockets bound to the same address with `SO_REUSEPORT`, one event loop
    /// each (`--statsd.udp-workers`); the kernel spreads senders across them.
    pub udp_workers: usize,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            udp: Some(SocketAddr::from(([0, 0, 0, 0], 8125))),
            tcp: Some(SocketAddr::from(([0, 0, 0, 0], 8125))),
            unixgram: None,
            unix: None,
            unixsocket_mode: 0o755,
            read_buffer: None,
            tcp_max_line: crate::parser::DEFAULT_MAX_LINE_LENGTH,
            tcp_max_connections: 4096,
            udp_workers: 1,
        }
    }
}

/// The bound StatsD sockets.
#[derive(Debug)]
pub struct Sockets {
    udp: Option<std::net::UdpSocket>,
    /// More UDP sockets on the same address, for extra ingest loops.
    udp_extra: Vec<std::net::UdpSocket>,
    tcp: Option<std::net::TcpListener>,
    unixgram: Option<(std::os::unix::net::UnixDatagram, PathBuf)>,
    unix: Option<(std::os::unix::net::UnixListener, PathBuf)>,
}

impl Sockets {
    /// The bound UDP address.
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The bound TCP address.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The unix datagram socket path.
    pub fn unixgram_path(&self) -> Option<&Path> {
        self.unixgram.as_ref().map(|(_, p)| p.as_path())
    }

    /// The unix stream socket path.
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(_, p)| p.as_path())
    }

    /// Split off the extra UDP sockets, each as its own `Sockets` for an extra
    /// event loop (these loops serve UDP only).
    pub fn take_udp_workers(&mut self) -> Vec<Sockets> {
        std::mem::take(&mut self.udp_extra)
            .into_iter()
            .map(|u| Sockets {
                udp: Some(u),
                udp_extra: Vec::new(),
                tcp: None,
                unixgram: None,
                unix: None,
            })
            .collect()
    }
}

/// A bind failure, with what was being bound.
#[derive(Debug)]
pub struct BindError {
    /// What failed, e.g. `UDP 0.0.0.0:8125`.
    pub what: String,
    /// The OS error.
    pub source: io::Error,
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot listen on {}: {}", self.what, self.source)
    }
}

impl std::error::Error for BindError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Bind every configured StatsD socket.
pub fn bind(opts: &ListenOptions) -> Result<Sockets, BindError> {
    let workers = opts.udp_workers.max(1);
    let mut udp = None;
    let mut udp_extra = Vec::new();
    if let Some(addr) = opts.udp {
        let err = |source| BindError {
            what: format!("UDP {addr}"),
            source,
        };
        let first = bind_udp(addr, opts.read_buffer, workers > 1).map_err(err)?;
        // With port 0 the first socket picked the port; the others join it.
        let bound = first.local_addr().map_err(err)?;
        for _ in 1..workers {
            udp_extra.push(bind_udp(bound, opts.read_buffer, true).map_err(err)?);
        }
        udp = Some(first);
    }
    let tcp = match opts.tcp {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr).map_err(|source| BindError {
                what: format!("TCP {addr}"),
                source,
            })?;
            l.set_nonblocking(true).map_err(|source| BindError {
                what: format!("TCP {addr}"),
                source,
            })?;
            Some(l)
        }
        None => None,
    };
    let unixgram = match &opts.unixgram {
        Some(path) => Some((
            bind_unixgram(path, opts.unixsocket_mode, opts.read_buffer).map_err(|source| {
                BindError {
                    what: format!("unixgram {}", path.display()),
                    source,
                }
            })?,
            path.clone(),
        )),
        None => None,
    };
    let unix = match &opts.unix {
        Some(path) => Some((
            bind_unix_stream(path, opts.unixsocket_mode).map_err(|source| BindError {
                what: format!("unix {}", path.display()),
                source,
            })?,
            path.clone(),
        )),
        None => None,
    };
    Ok(Sockets {
        udp,
        udp_extra,
        tcp,
        unixgram,
        unix,
    })
}

fn set_read_buffer(sock: &socket2::SockRef<'_>, size: usize, what: &str) -> io::Result<()> {
    sock.set_recv_buffer_size(size)?;
    let mut got = sock.recv_buffer_size()?;
    // Linux reports twice the requested size (bookkeeping overhead included).
    if got < size && force_read_buffer(sock, size) {
        // A process with CAP_NET_ADMIN may go past net.core.rmem_max.
        got = sock.recv_buffer_size()?;
        tracing::info!(
            requested = size,
            granted = got,
            "{what}: receive buffer set past net.core.rmem_max (SO_RCVBUFFORCE)"
        );
    }
    if got < size {
        tracing::warn!(
            requested = size,
            granted = got,
            "{what}: the kernel capped the receive buffer; raise net.core.rmem_max"
        );
    }
    Ok(())
}

fn bind_udp(
    addr: SocketAddr,
    read_buffer: Option<usize>,
    reuse_port: bool,
) -> io::Result<std::net::UdpSocket> {
    let sock = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    if let Some(size) = read_buffer {
        set_read_buffer(&socket2::SockRef::from(&sock), size, "UDP")?;
    }
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

fn bind_unixgram(
    path: &Path,
    mode: u32,
    read_buffer: Option<usize>,
) -> io::Result<std::os::unix::net::UnixDatagram> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            tracing::info!(path = %path.display(), "removing the stale unixgram socket file");
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket; refusing to replace it",
            ))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let sock = std::os::unix::net::UnixDatagram::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(size) = read_buffer {
        set_read_buffer(&socket2::SockRef::from(&sock), size, "unixgram")?;
    }
    sock.set_nonblocking(true)?;
    Ok(sock)
}

/// Remove a stale stream socket file: one nobody accepts connections on.
fn remove_stale_stream_socket(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    "another process is listening on this socket",
                ));
            }
            tracing::info!(path = %path.display(), "removing the stale unix socket file");
            std::fs::remove_file(path)
        }
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "the path exists and is not a socket; refusing to replace it",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn bind_unix_stream(path: &Path, mode: u32) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    remove_stale_stream_socket(path)?;
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// A newline-delimited StatsD stream: TCP or unix.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Stream {
    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => registry.register(s, token, Interest::READABLE),
            Stream::Unix(s) => registry.register(s, token, Interest::READABLE),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => registry.deregister(s),
            Stream::Unix(s) => registry.deregister(s),
        }
    }

    fn kind(&self) -> ListenerKind {
        match self {
            Stream::Tcp(_) => ListenerKind::Tcp,
            Stream::Unix(_) => ListenerKind::Unix,
        }
    }
}

struct Conn {
    stream: Stream,
    /// A partial line waiting for its newline.
    partial: Vec<u8>,
    /// True while skipping the rest of an over-long line.
    discarding: bool,
}

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
            *c = Some(Conn {
                stream,
                partial: Vec::new(),
                discarding: false,
            });
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
                    if !conn.discarding && !conn.partial.is_empty() {
                        self.ingester.ingest_lines(&conn.partial);
                    }
                    close = true;
                    break;
                }
                Ok(n) => {
                    let data = &self.read_buf[..n];
                    self.ingester.local.packet(conn.stream.kind(), n);
                    let too_long = feed(conn, data, max_line, &mut self.ingester);
                    if too_long > 0 {
                        self.ingester.local.lines += too_long;
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

/// Feed bytes read from a TCP connection: complete lines are ingested, a partial
/// line is kept, lines longer than `max_line` are dropped. Returns how many lines
/// were dropped for length.
fn feed(conn: &mut Conn, mut data: &[u8], max_line: usize, ingester: &mut Ingester) -> u64 {
    let mut too_long = 0;
    while !data.is_empty() {
        match memchr::memchr(b'\n', data) {
            Some(i) => {
                let part = &data[..i];
                data = &data[i + 1..];
                if conn.discarding {
                    conn.discarding = false;
                } else if conn.partial.len() + part.len() > max_line {
                    too_long += 1;
                } else if conn.partial.is_empty() {
                    ingester.ingest_lines(part);
                } else {
                    conn.partial.extend_from_slice(part);
                    ingester.ingest_lines(&conn.partial);
                }
                conn.partial.clear();
            }
            None => {
                if conn.discarding {
                } else if conn.partial.len() + data.len() > max_line {
                    too_long += 1;
                    conn.discarding = true;
                    conn.partial = Vec::new();
                } else {
                    conn.partial.extend_from_slice(data);
                }
                break;
            }
        }
    }
    too_long
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
