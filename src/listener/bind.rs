//! Binding the StatsD sockets: UDP (with `SO_REUSEPORT` workers), TCP, unix
//! datagram and stream sockets, receive buffers sized (past
//! `net.core.rmem_max` where allowed).

use crate::sys::force_read_buffer;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    pub(super) udp: Option<std::net::UdpSocket>,
    /// More UDP sockets on the same address, for extra ingest loops.
    pub(super) udp_extra: Vec<std::net::UdpSocket>,
    pub(super) tcp: Option<std::net::TcpListener>,
    pub(super) unixgram: Option<(std::os::unix::net::UnixDatagram, PathBuf)>,
    pub(super) unix: Option<(std::os::unix::net::UnixListener, PathBuf)>,
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
            let l = crate::sys::tcp_listener(addr).map_err(|source| BindError {
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

pub(super) fn set_read_buffer(
    sock: &socket2::SockRef<'_>,
    size: usize,
    what: &str,
) -> io::Result<()> {
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

pub(super) fn bind_udp(
    addr: SocketAddr,
    read_buffer: Option<usize>,
    reuse_port: bool,
) -> io::Result<std::net::UdpSocket> {
    let sock = crate::sys::bind(addr, socket2::Type::DGRAM, socket2::Protocol::UDP, |sock| {
        if reuse_port {
            sock.set_reuse_port(true)?;
        }
        if let Some(size) = read_buffer {
            set_read_buffer(&socket2::SockRef::from(sock), size, "UDP")?;
        }
        Ok(())
    })?;
    sock.set_nonblocking(true)?;
    Ok(sock.into())
}

pub(super) fn bind_unixgram(
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
pub(super) fn remove_stale_stream_socket(path: &Path) -> io::Result<()> {
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

pub(super) fn bind_unix_stream(
    path: &Path,
    mode: u32,
) -> io::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    remove_stale_stream_socket(path)?;
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    l.set_nonblocking(true)?;
    Ok(l)
}
