//! StatsD streams (TCP and unix): a connection, its partial line, and feeding
//! complete lines to the ingester. Lines are newline-delimited; a unix stream
//! whose first bytes are a DogStatsD length prefix (the DataDog clients' unix
//! stream mode) is read as length-prefixed packets instead.

use crate::ingest::stats::ListenerKind;
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

/// How a stream connection delimits its packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// Newline-delimited lines (TCP; what a unix stream starts as).
    Lines,
    /// A unix stream whose first bytes have not all arrived: it may be
    /// DogStatsD's length-prefixed framing.
    Undecided,
    /// DogStatsD's unix stream framing: each packet is a 4-byte little-endian
    /// length, then that many bytes of newline-separated lines. `skip` bytes of
    /// an over-long packet are still to be dropped.
    LengthPrefixed { skip: usize },
}

/// How many first bytes tell the framings apart.
const PREFIX: usize = 4;

pub(super) struct Conn {
    pub(super) stream: Stream,
    /// A partial line (or packet, with its length prefix) waiting for its end.
    pub(super) partial: Vec<u8>,
    /// True while skipping the rest of an over-long line.
    pub(super) discarding: bool,
    pub(super) framing: Framing,
}

impl Conn {
    /// A connection on `stream`: unix streams may turn out length-prefixed.
    pub(super) fn new(stream: Stream) -> Self {
        let framing = match stream {
            Stream::Tcp(_) => Framing::Lines,
            Stream::Unix(_) => Framing::Undecided,
        };
        Self {
            stream,
            partial: Vec::new(),
            discarding: false,
            framing,
        }
    }
}

/// Feed bytes read from a stream connection: complete lines (or packets) go
/// to `sink`, a partial one is kept, ones longer than `max_line` are dropped.
/// Returns how many were dropped for length.
pub(super) fn feed(
    conn: &mut Conn,
    data: &[u8],
    max_line: usize,
    sink: &mut impl FnMut(&[u8]),
) -> u64 {
    match conn.framing {
        Framing::Lines => feed_lines(conn, data, max_line, sink),
        Framing::LengthPrefixed { .. } => feed_prefixed(conn, data, max_line, sink),
        Framing::Undecided => {
            let take = (PREFIX - conn.partial.len()).min(data.len());
            conn.partial.extend_from_slice(&data[..take]);
            if conn.partial.len() < PREFIX {
                return 0;
            }
            conn.framing = framing_of(&conn.partial);
            let first = std::mem::take(&mut conn.partial);
            feed(conn, &first, max_line, sink) + feed(conn, &data[take..], max_line, sink)
        }
    }
}

/// The framing a unix stream's first four bytes show. A length prefix of a
/// StatsD packet (at most 64 KiB) has two zero bytes on top; StatsD text never
/// starts with a name holding a NUL byte, let alone two.
pub(super) fn framing_of(first: &[u8]) -> Framing {
    match first {
        [_, _, 0, 0, ..] => Framing::LengthPrefixed { skip: 0 },
        _ => Framing::Lines,
    }
}

/// The end of a connection: a last line without its newline goes to `sink` (a
/// partial length-prefixed packet is dropped: its sender was cut off).
pub(super) fn finish(conn: &mut Conn, sink: &mut impl FnMut(&[u8])) {
    if matches!(conn.framing, Framing::Undecided) {
        // Fewer than four bytes came, too few for a length prefix: lines, and
        // each complete one goes to `sink` on its own, as in `feed_lines`.
        conn.framing = Framing::Lines;
        let first = std::mem::take(&mut conn.partial);
        feed_lines(conn, &first, PREFIX, sink);
    }
    let whole_line = matches!(conn.framing, Framing::Lines | Framing::Undecided);
    if whole_line && !conn.discarding && !conn.partial.is_empty() {
        sink(&conn.partial);
    }
    conn.partial.clear();
}

fn feed_lines(
    conn: &mut Conn,
    mut data: &[u8],
    max_line: usize,
    sink: &mut impl FnMut(&[u8]),
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
                    sink(part);
                } else {
                    conn.partial.extend_from_slice(part);
                    sink(&conn.partial);
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

/// [`Framing::LengthPrefixed`]: `partial` holds the prefix and what has come
/// of the packet; a packet over `max_line` is skipped, counted once.
fn feed_prefixed(
    conn: &mut Conn,
    mut data: &[u8],
    max_line: usize,
    sink: &mut impl FnMut(&[u8]),
) -> u64 {
    let mut too_long = 0;
    while !data.is_empty() {
        if let Framing::LengthPrefixed { skip } = &mut conn.framing {
            if *skip > 0 {
                let n = (*skip).min(data.len());
                *skip -= n;
                data = &data[n..];
                continue;
            }
        }
        if conn.partial.len() < PREFIX {
            let take = (PREFIX - conn.partial.len()).min(data.len());
            conn.partial.extend_from_slice(&data[..take]);
            data = &data[take..];
            continue;
        }
        let mut prefix = [0u8; PREFIX];
        prefix.copy_from_slice(&conn.partial[..PREFIX]);
        let len = u32::from_le_bytes(prefix) as usize;
        if len > max_line {
            too_long += 1;
            conn.framing = Framing::LengthPrefixed { skip: len };
            conn.partial.clear();
            continue;
        }
        let have = conn.partial.len() - PREFIX;
        let take = (len - have).min(data.len());
        conn.partial.extend_from_slice(&data[..take]);
        data = &data[take..];
        if conn.partial.len() - PREFIX == len {
            sink(&conn.partial[PREFIX..]);
            conn.partial.clear();
        }
    }
    too_long
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn conn_on_unix() -> Conn {
        let (a, _b) = UnixStream::pair().expect("a socket pair");
        Conn::new(Stream::Unix(a))
    }

    /// Feed `bytes` in pieces cut at `cuts`; what reached the sink, and how
    /// many were dropped for length.
    fn feed_in_pieces(bytes: &[u8], cuts: &[usize], max_line: usize) -> (Vec<Vec<u8>>, u64) {
        let mut conn = conn_on_unix();
        let mut got = Vec::new();
        let mut too_long = 0;
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([bytes.len()]) {
            too_long += feed(&mut conn, &bytes[at..cut], max_line, &mut |p| {
                got.push(p.to_vec())
            });
            at = cut;
        }
        finish(&mut conn, &mut |p| got.push(p.to_vec()));
        (got, too_long)
    }

    #[test]
    fn a_unix_stream_shorter_than_a_prefix_is_split_into_lines() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"a\n|", &[b"a", b"|"]),
            (b"a:1", &[b"a:1"]),
            (b"\nb", &[b"", b"b"]),
        ];
        for (bytes, want) in cases {
            let (got, too_long) = feed_in_pieces(bytes, &[], 20);
            assert_eq!(
                got,
                want.iter().map(|l| l.to_vec()).collect::<Vec<_>>(),
                "{bytes:?}"
            );
            assert_eq!(too_long, 0);
        }
    }

    #[test]
    fn the_first_four_bytes_tell_the_framing() {
        let cases: &[(&[u8], Framing)] = &[
            (b"a:1|", Framing::Lines),
            (b"\n\n\n\n", Framing::Lines),
            (&[9, 0, 0, 0], Framing::LengthPrefixed { skip: 0 }),
            (&[0xff, 0xff, 0, 0], Framing::LengthPrefixed { skip: 0 }),
            (&[0, 0, 1, 0], Framing::Lines),
        ];
        for (first, want) in cases {
            assert_eq!(framing_of(first), *want, "{first:?}");
        }
    }

    proptest! {
        /// Oracle: DogStatsD-framed packets, cut anywhere, come out whole and in
        /// order; those over the limit are dropped and counted, one each.
        #[test]
        fn length_prefixed_packets_survive_any_cuts(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..40), 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            max_line in 8usize..48,
        ) {
            let mut bytes = Vec::new();
            for p in &packets {
                bytes.extend((p.len() as u32).to_le_bytes());
                bytes.extend(p);
            }
            let (got, too_long) = feed_in_pieces(&bytes, &cuts, max_line);
            let want: Vec<Vec<u8>> = packets.iter().filter(|p| p.len() <= max_line).cloned().collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(too_long as usize, packets.iter().filter(|p| p.len() > max_line).count());
        }

        /// Oracle: newline-delimited text on a unix stream is still lines.
        #[test]
        fn lines_survive_any_cuts(
            lines in proptest::collection::vec("[a-z:|.0-9]{1,30}", 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let text = lines.join("\n");
            let (got, too_long) = feed_in_pieces(text.as_bytes(), &cuts, 20);
            let want: Vec<Vec<u8>> = lines.iter().filter(|l| l.len() <= 20).map(|l| l.as_bytes().to_vec()).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(too_long as usize, lines.iter().filter(|l| l.len() > 20).count());
        }
    }
}
