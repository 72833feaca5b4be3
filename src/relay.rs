//! Relay: every valid line is also forwarded to an upstream StatsD, packed into
//! datagrams of at most `packet_length` bytes, flushed at least once a second.
//!
//! Sending never blocks ingestion: the socket is non-blocking, and a datagram the
//! kernel refuses (a full buffer, a dead upstream answering with ICMP) is dropped
//! and counted.
//!
//! May import: vocab, model.

use crate::model::collect::{Collector, SelfFamily};
use crate::vocab::MetricKind::Counter;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};

/// Relay settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayOptions {
    /// The upstream StatsD (`--statsd.relay.address`).
    pub target: SocketAddr,
    /// Largest datagram sent (`--statsd.relay.packet-length`).
    pub packet_length: usize,
}

/// Relay counters, shared by every ingest thread.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Datagrams sent upstream.
    pub packets: AtomicU64,
    /// Lines forwarded.
    pub lines: AtomicU64,
    /// Lines longer than a datagram, not forwarded.
    pub long_lines: AtomicU64,
    /// Datagrams the kernel refused (dead upstream, full buffer).
    pub errors: AtomicU64,
}

impl Collector for RelayStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        // Relaxed: independent counters, read one by one.
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64;
        out.extend([
            SelfFamily::single(
                "promstatsd_relay_packets_total",
                Counter,
                "Datagrams relayed upstream.",
                get(&self.packets),
            ),
            SelfFamily::single(
                "promstatsd_relay_lines_relayed_total",
                Counter,
                "Lines relayed upstream.",
                get(&self.lines),
            ),
            SelfFamily::single(
                "promstatsd_relay_long_lines_total",
                Counter,
                "Lines too long for a relay datagram, not relayed.",
                get(&self.long_lines),
            ),
            SelfFamily::single(
                "promstatsd_relay_errors_total",
                Counter,
                "Relay datagrams the kernel refused (dead upstream, full buffer).",
                get(&self.errors),
            ),
        ]);
    }
}

/// One ingest thread's relay: a socket and a datagram being filled.
#[derive(Debug)]
pub struct Relay {
    sock: UdpSocket,
    buf: Vec<u8>,
    max: usize,
    /// Lines in `buf`.
    pending_lines: u64,
    last_flush: u64,
}

impl Relay {
    /// A relay to `opts.target`, from an ephemeral local port.
    pub fn new(opts: &RelayOptions) -> io::Result<Self> {
        let local: SocketAddr = if opts.target.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let sock = UdpSocket::bind(local)?;
        sock.connect(opts.target)?;
        sock.set_nonblocking(true)?;
        Ok(Self {
            sock,
            buf: Vec::with_capacity(opts.packet_length),
            max: opts.packet_length.max(1),
            pending_lines: 0,
            last_flush: 0,
        })
    }

    /// Queue a valid line (without its newline).
    pub fn push(&mut self, line: &[u8], stats: &RelayStats) {
        if line.len() > self.max {
            // Relaxed: self-metric counters.
            stats.long_lines.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let need = line.len() + usize::from(!self.buf.is_empty());
        if self.buf.len() + need > self.max {
            self.flush(stats);
        }
        if !self.buf.is_empty() {
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(line);
        self.pending_lines += 1;
    }

    /// Send what is queued.
    pub fn flush(&mut self, stats: &RelayStats) {
        if self.buf.is_empty() {
            return;
        }
        // Relaxed: self-metric counters.
        match self.sock.send(&self.buf) {
            Ok(_) => {
                stats.packets.fetch_add(1, Ordering::Relaxed);
                stats.lines.fetch_add(self.pending_lines, Ordering::Relaxed);
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "relay: datagram dropped");
            }
        }
        self.buf.clear();
        self.pending_lines = 0;
    }

    /// Flush if the clock (seconds) moved since the last flush.
    pub fn tick(&mut self, now: u64, stats: &RelayStats) {
        if now != self.last_flush {
            self.last_flush = now;
            self.flush(stats);
        }
    }
}
