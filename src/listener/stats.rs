//! The listeners' own self-metrics: TCP connections, receive errors and the
//! kernel's UDP drops. Every counter is `Relaxed`: independent counters that a
//! scrape reads one by one.

use crate::model::collect::{Collector, SelfFamily};
use crate::vocab::MetricKind::{Counter, Gauge};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters shared by every listener thread (one per store, from its registry).
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// TCP connections accepted.
    pub tcp_connections: AtomicU64,
    /// TCP connections open now (a gauge).
    pub tcp_open: AtomicU64,
    /// TCP connections refused at the connection limit.
    pub tcp_refused: AtomicU64,
    /// Errors reading from TCP connections.
    pub tcp_errors: AtomicU64,
    /// TCP lines discarded for exceeding the line-length limit.
    pub tcp_too_long: AtomicU64,
    /// Socket receive errors other than "would block".
    pub recv_errors: AtomicU64,
    /// UDP datagrams the kernel dropped for lack of socket buffer (SO_MEMINFO).
    pub udp_kernel_drops: AtomicU64,
}

fn get(a: &AtomicU64) -> f64 {
    // Relaxed: see the module comment.
    a.load(Ordering::Relaxed) as f64
}

impl Collector for ListenerStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        out.extend([
            SelfFamily::single(
                "promstatsd_tcp_connections_total",
                Counter,
                "TCP connections accepted.",
                get(&self.tcp_connections),
            ),
            SelfFamily::single(
                "promstatsd_tcp_connections_open",
                Gauge,
                "TCP connections open now.",
                get(&self.tcp_open),
            ),
            SelfFamily::single(
                "promstatsd_tcp_connections_refused_total",
                Counter,
                "TCP connections closed at once because the connection limit was reached.",
                get(&self.tcp_refused),
            ),
            SelfFamily::single(
                "promstatsd_tcp_connection_errors_total",
                Counter,
                "Errors reading from TCP connections.",
                get(&self.tcp_errors),
            ),
            SelfFamily::single(
                "promstatsd_tcp_too_long_lines_total",
                Counter,
                "TCP lines discarded for exceeding the line-length limit.",
                get(&self.tcp_too_long),
            ),
            SelfFamily::single(
                "promstatsd_receive_errors_total",
                Counter,
                "Socket receive errors (other than would-block).",
                get(&self.recv_errors),
            ),
            SelfFamily::single(
                "promstatsd_udp_kernel_drops_total",
                Counter,
                "UDP datagrams the kernel dropped because the socket's receive buffer was full (SO_MEMINFO); raise --statsd.read-buffer.",
                get(&self.udp_kernel_drops),
            ),
        ]);
    }
}
