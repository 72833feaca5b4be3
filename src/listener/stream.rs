//! Newline-delimited StatsD streams (TCP and unix): a connection, its partial
//! line, and feeding complete lines to the ingester.

use crate::ingest::stats::ListenerKind;
use crate::ingest::Ingester;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use std::io::{self, Read};

/// A newline-delimited StatsD stream: TCP or unix.
pub(super) enum Stream {
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
    pub(super) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => registry.register(s, token, Interest::READABLE),
            Stream::Unix(s) => registry.register(s, token, Interest::READABLE),
        }
    }

    pub(super) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => registry.deregister(s),
            Stream::Unix(s) => registry.deregister(s),
        }
    }

    pub(super) fn kind(&self) -> ListenerKind {
        match self {
            Stream::Tcp(_) => ListenerKind::Tcp,
            Stream::Unix(_) => ListenerKind::Unix,
        }
    }
}

pub(super) struct Conn {
    pub(super) stream: Stream,
    /// A partial line waiting for its newline.
    pub(super) partial: Vec<u8>,
    /// True while skipping the rest of an over-long line.
    pub(super) discarding: bool,
}

/// Feed bytes read from a TCP connection: complete lines are ingested, a partial
/// line is kept, lines longer than `max_line` are dropped. Returns how many lines
/// were dropped for length.
pub(super) fn feed(
    conn: &mut Conn,
    mut data: &[u8],
    max_line: usize,
    ingester: &mut Ingester,
) -> u64 {
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
