//! System: every call into the operating system that is not a socket read.
//!
//! Owns: the open-files limit, thread priority, the host name, `SO_RCVBUFFORCE`,
//! TCP listeners with the system's backlog, the CPU count,
//! the CPU prefetch hint, the wall clock ([`unix_now`]) and the store's coarse
//! monotonic [`Clock`]. The receive loop's `recvmmsg` stays beside the loop
//! ([`crate::listener::recv`]), as mio keeps its readiness calls.
//!
//! May import: nothing from this crate (a leaf).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Read a whole regular file of at most `limit` bytes as UTF-8.
///
/// Opened with `O_NONBLOCK`, so a FIFO or a device never blocks the open; then
/// anything but a regular file is refused before a byte is read (a FIFO would
/// block the read, `/dev/zero` would never end), and a file over `limit` is
/// refused instead of read into memory.
pub fn read_regular_file(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device or directory is refused)",
        ));
    }
    if meta.len() > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("{} bytes, over the limit of {limit}", meta.len()),
        ));
    }
    let mut text = String::new();
    // The file may grow between the check and the read: read one byte past
    // the limit at most.
    file.take(limit + 1).read_to_string(&mut text)?;
    if text.len() as u64 > limit {
        return Err(Error::new(
            ErrorKind::InvalidData,
            format!("over the limit of {limit} bytes"),
        ));
    }
    Ok(text)
}

/// Raise the soft open-files limit to the hard limit (as the Go runtime does for
/// statsd_exporter), so thousands of TCP clients do not exhaust descriptors.
pub fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit; failure only leaves the old limit.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    }
}

/// The nice value of the threads that are not on the ingest path (web, push,
/// housekeeping, remote write): on a busy machine the scheduler then gives the
/// ingest threads the CPU first, so rendering a large page does not starve the
/// receive loop and lose datagrams. A scrape takes longer under contention.
pub const BACKGROUND_NICE: i32 = 10;

/// Lower the calling thread's priority to [`BACKGROUND_NICE`] (Linux: the nice
/// value is per thread). Failure leaves it as it was.
pub fn lower_thread_priority() {
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: plain syscall on our own thread id; an error only leaves the old value.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE) };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower a background thread's priority");
    }
}

/// Set a socket's receive buffer with `SO_RCVBUFFORCE`, past `net.core.rmem_max`;
/// true if the kernel took it (the process needs CAP_NET_ADMIN).
pub fn force_read_buffer(sock: &socket2::SockRef<'_>, size: usize) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(v) = libc::c_int::try_from(size) else {
        return false;
    };
    // SAFETY: `sock` is an open socket for the duration of the call, and the option
    // value is a live `c_int` whose size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

/// Ask the CPU to start loading the cache line at `p` (no effect elsewhere).
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is a hint: it never faults and never dereferences
        // in the language's sense, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The kernel's cap on a listen backlog (`net.core.somaxconn`; 4096, Linux's
/// default since 5.4, when it cannot be read).
pub fn somaxconn() -> i32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(4096)
}

/// A TCP listener on `addr` with the system's backlog: the standard library
/// listens with 128, which a burst of clients connecting at once overflows.
/// A wildcard address listens on IPv4 and IPv6 (see [`bind`]).
pub fn tcp_listener(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Protocol, Type};
    let sock = bind(addr, Type::STREAM, Protocol::TCP, |s| {
        // As the standard library does on Unix: a restart can bind at once.
        s.set_reuse_address(true)
    })?;
    sock.listen(somaxconn())?;
    Ok(sock.into())
}

/// A socket of type `ty` bound to `addr`, `prepare`d before it is bound.
///
/// A wildcard address (`0.0.0.0`, `::`, and so `:port`) listens on IPv4 and
/// IPv6 at once, as Go's listeners (and so statsd_exporter's) do: an IPv6
/// socket with `IPV6_V6ONLY` off, which takes IPv4 clients as
/// `::ffff:a.b.c.d`. Where the host has no IPv6 it is the IPv4 wildcard.
pub fn bind(
    addr: std::net::SocketAddr,
    ty: socket2::Type,
    protocol: socket2::Protocol,
    prepare: impl Fn(&socket2::Socket) -> std::io::Result<()>,
) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket};
    let plain = |addr: std::net::SocketAddr| -> std::io::Result<Socket> {
        let sock = Socket::new(Domain::for_address(addr), ty, Some(protocol))?;
        prepare(&sock)?;
        sock.bind(&addr.into())?;
        Ok(sock)
    };
    if !addr.ip().is_unspecified() {
        return plain(addr);
    }
    let dual = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, addr.port()));
    let tried = Socket::new(Domain::IPV6, ty, Some(protocol)).and_then(|sock| {
        sock.set_only_v6(false)?;
        prepare(&sock)?;
        sock.bind(&dual.into())?;
        Ok(sock)
    });
    match tried {
        Ok(sock) => Ok(sock),
        // No IPv6 on this host (disabled, or not built in): IPv4 alone.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL | libc::EPROTONOSUPPORT)
            ) =>
        {
            plain(std::net::SocketAddr::from((
                std::net::Ipv4Addr::UNSPECIFIED,
                addr.port(),
            )))
        }
        Err(e) => Err(e),
    }
}

/// CPUs this process may run on (1 when the OS does not say).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// The machine's host name (the default `instance` of remote-written series).
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid and writable for `buf.len()` bytes for the call.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match (rc, std::str::from_utf8(&buf[..end])) {
        (0, Ok(h)) if !h.is_empty() => h.to_owned(),
        _ => "localhost".to_owned(),
    }
}

/// The current time as Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A coarse monotonic clock in whole seconds since the store was created.
///
/// The ingest loop ticks it once per wake-up, so the hot path reads one atomic
/// instead of asking the OS for the time per sample.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
    now: AtomicU64,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            now: AtomicU64::new(0),
        }
    }
}

impl Clock {
    /// Refresh from the OS clock and return the new reading.
    pub fn tick(&self) -> u64 {
        let secs = self.start.elapsed().as_secs();
        // Relaxed: a coarse timestamp; a reader one tick behind is harmless.
        self.now.fetch_max(secs, Ordering::Relaxed);
        secs
    }

    /// The last reading.
    #[inline]
    pub fn now(&self) -> u64 {
        // Relaxed: see `tick`.
        self.now.load(Ordering::Relaxed)
    }
}
