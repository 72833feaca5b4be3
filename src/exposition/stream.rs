//! The page as a stream of HTTP chunks: [`PageBody`] encodes the next part of
//! the page only when hyper asks for it, so a scrape holds one chunk (and its
//! gzip state), never the page, and a client that reads slowly costs no CPU and
//! no memory beyond that while it waits.
//!
//! Each chunk is encoded on the serving thread from a [`Walk`] that remembers
//! where the page stands; no lock is held between chunks, so ingestion, other
//! scrapes and remote write go on while a page is out. After a few chunks the
//! body lets the thread's other requests run (health checks wait for at most
//! that much rendering).

use super::conn::PagePlace;
use super::proto::{self, ProtoEncoder};
use super::text::{self, Format, TextEncoder};
use crate::model::collect::{Collector, SelfFamily, SelfValue};
use crate::store::atomic::AtomicF64;
use crate::store::{Store, Walk};
use crate::vocab::MetricKind;
use bytes::Bytes;
use hyper::body::{Body, Frame};
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Bytes of page encoded per chunk (a chunk ends between two series, so it
/// may be longer by one series, or by the self-metric and pushed families that
/// sort between two StatsD families).
pub const CHUNK: usize = 64 * 1024;

/// Chunks encoded in a row before the body lets other tasks on the serving
/// thread run: about a millisecond of work without gzip, a few with it.
const CHUNKS_PER_TURN: u32 = 4;

/// A gzip stream into a buffer of `capacity` bytes, at the one level every
/// page is compressed with (fast: a scrape is paid for in CPU every interval).
pub fn gzip_writer(capacity: usize) -> flate2::write::GzEncoder<Vec<u8>> {
    flate2::write::GzEncoder::new(Vec::with_capacity(capacity), flate2::Compression::fast())
}

/// The wire format of a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageFormat {
    /// Text 0.0.4 or OpenMetrics.
    Text(Format),
    /// Delimited protobuf ([`proto`]).
    Protobuf,
}

impl PageFormat {
    /// The `Content-Type` of a page in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Text(Format::Text) => text::CONTENT_TYPE,
            Self::Text(Format::OpenMetrics) => text::OPENMETRICS_CONTENT_TYPE,
            Self::Protobuf => proto::CONTENT_TYPE,
        }
    }
}

/// The body of a `/metrics` answer, encoded as it is sent.
pub struct PageBody {
    store: Arc<Store>,
    walk: Walk,
    format: PageFormat,
    gzip: Option<flate2::write::GzEncoder<Vec<u8>>>,
    /// The page's place among the pages in flight, given back once the last
    /// chunk is encoded (or the body is dropped with its connection).
    place: Option<PagePlace>,
    stats: Arc<ScrapeStats>,
    /// Time spent encoding (and compressing) this page so far.
    busy: Duration,
    turn: u32,
    /// Set while the body lets the thread's other tasks run.
    pause: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    ended: bool,
}

impl PageBody {
    /// The page of `store` in `format`, gzipped if asked, holding `place`.
    pub fn new(
        store: Arc<Store>,
        format: PageFormat,
        gzip: bool,
        place: PagePlace,
        stats: Arc<ScrapeStats>,
    ) -> Self {
        let started = Instant::now();
        let walk = store.walk();
        Self {
            store,
            walk,
            format,
            gzip: gzip.then(|| gzip_writer(CHUNK / 2)),
            place: Some(place),
            stats,
            busy: started.elapsed(),
            turn: 0,
            pause: None,
            ended: false,
        }
    }

    /// Encode the next chunk: `None` once the page is complete.
    fn next_chunk(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.ended {
            return None;
        }
        let started = Instant::now();
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 4);
        match self.format {
            PageFormat::Text(format) => {
                let mut enc = TextEncoder::new(&mut out, format);
                self.store
                    .resume(&mut self.walk, &mut enc, |e| e.written() >= CHUNK);
                if self.walk.is_done() {
                    enc.finish();
                }
            }
            PageFormat::Protobuf => {
                // Every chunk ends its open family: a chunk holds whole messages.
                let mut enc = ProtoEncoder::new(&mut out);
                self.store
                    .resume(&mut self.walk, &mut enc, |e| e.written() >= CHUNK);
                enc.finish();
            }
        }
        self.ended = self.walk.is_done();
        let chunk = match &mut self.gzip {
            None => Ok(Bytes::from(out)),
            Some(z) => z
                .write_all(&out)
                .and_then(|()| match self.ended {
                    true => z.try_finish(),
                    false => Ok(()),
                })
                .map(|()| Bytes::from(std::mem::take(z.get_mut()))),
        };
        self.busy += started.elapsed();
        if self.ended {
            self.finished();
        }
        Some(chunk)
    }

    /// The last chunk is encoded: give the place back and count the scrape.
    fn finished(&mut self) {
        self.place = None;
        self.stats.record(self.busy.as_secs_f64());
    }
}

impl Body for PageBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.turn >= CHUNKS_PER_TURN {
            // `yield_now` lets the runtime poll its sockets before this task
            // runs again (a plain self-wake would not: the runtime would run
            // this task again and again before it looked for new requests).
            let pause = this
                .pause
                .get_or_insert_with(|| Box::pin(tokio::task::yield_now()));
            if pause.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            this.pause = None;
            this.turn = 0;
        }
        loop {
            match this.next_chunk() {
                None => return Poll::Ready(None),
                // gzip kept everything in its window: encode more.
                Some(Ok(b)) if b.is_empty() && !this.ended => continue,
                Some(Ok(b)) => {
                    this.turn += 1;
                    return Poll::Ready(Some(Ok(Frame::data(b))));
                }
                Some(Err(e)) => {
                    // Writing into memory cannot fail short of a bug; the
                    // client sees a cut chunked stream, never a wrong page.
                    tracing::error!(error = %e, "web: compressing the page failed");
                    this.ended = true;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

/// Scrapes served and the time spent rendering them.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    scrapes: AtomicU64,
    seconds: AtomicF64,
    refused: AtomicU64,
}

impl ScrapeStats {
    /// Count one scrape that took `secs` to render.
    pub fn record(&self, secs: f64) {
        self.seconds.add(secs);
        // Relaxed: a self-metric counter, read on its own.
        self.scrapes.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a scrape refused for want of a place among the pages in flight.
    pub fn refused(&self) {
        // Relaxed: see `record`.
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
}

impl Collector for ScrapeStats {
    fn collect(&self, out: &mut Vec<SelfFamily>) {
        out.push(SelfFamily {
            name: "promstatsd_scrape_duration_seconds",
            help: "Time spent rendering /metrics (encoding and compressing; not waiting for the client).",
            kind: MetricKind::Summary,
            series: vec![(
                Vec::new(),
                SelfValue::Summary {
                    sum: self.seconds.load(),
                    // Relaxed: see `record`.
                    count: self.scrapes.load(Ordering::Relaxed),
                },
            )],
        });
        out.push(SelfFamily::single(
            "promstatsd_scrapes_refused_total",
            MetricKind::Counter,
            "Scrapes answered 503: no place among the pages being sent within 10 s.",
            // Relaxed: see `record`.
            self.refused.load(Ordering::Relaxed) as f64,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::check;
    use crate::exposition::text::render_to_string;
    use crate::mapper::{MapOutcome, Mapper, MapperDefaults};
    use crate::model::{Mapping, ObserverType};
    use crate::parser::MetricType;
    use crate::store::atomic::Writers;
    use crate::store::{FamilyKind, SeriesArc};
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// Family `f` (counters, gauges and histograms in turn) with `l="<label>"`,
    /// HELP text `v<version>`.
    fn add(store: &Store, f: u8, label: u8, version: u64) -> SeriesArc {
        let name = format!("fam_{f}");
        let labels = vec![("l".to_owned(), label.to_string())];
        let MapOutcome::Map(mut m): MapOutcome =
            Mapper::new(MapperDefaults::default()).map(&name, MetricType::Counter, labels)
        else {
            panic!("the default mapper maps everything");
        };
        let kind = [
            FamilyKind::Counter,
            FamilyKind::Gauge,
            FamilyKind::Histogram,
        ][f as usize % 3];
        m.help = Arc::from(format!("v{version}"));
        if kind == FamilyKind::Histogram {
            m = Mapping {
                observer: ObserverType::Histogram,
                ..m
            };
        }
        let s = store
            .get_or_create(&m, kind)
            .expect("no limit, no conflict");
        match kind {
            FamilyKind::Histogram => s.observe(f64::from(label), 1, 0, Writers::Shared),
            FamilyKind::Gauge => s.gauge_update(f64::from(label), false, Writers::Shared),
            _ => s.counter_add(f64::from(label), Writers::Shared),
        }
        s
    }

    /// The page of `walk` in chunks of about `limit` bytes.
    fn step(store: &Store, walk: &mut Walk, limit: usize, out: &mut Vec<u8>) {
        let start = out.len();
        let mut enc = TextEncoder::new(out, Format::Text);
        store.resume(walk, &mut enc, |e| e.written() - start >= limit);
        if walk.is_done() {
            enc.finish();
        }
    }

    /// `(family, labels)` of every StatsD sample line of `page`.
    fn series_of(page: &str) -> BTreeMap<String, usize> {
        let mut seen = BTreeMap::new();
        for line in page.lines().filter(|l| l.starts_with("fam_")) {
            let key = line.split(' ').next().unwrap_or_default();
            // A histogram's series is counted by its `_count` line.
            if key.contains("_bucket") || key.contains("_sum") {
                continue;
            }
            *seen.entry(key.replace("_count", "")).or_insert(0) += 1;
        }
        seen
    }

    #[test]
    fn a_page_in_small_steps_is_the_page_in_one() {
        let store = Store::default();
        for f in 0..6 {
            for l in 0..40 {
                add(&store, f, l, 0);
            }
        }
        let whole = render_to_string(&store);
        for limit in [1, 100, 5_000, usize::MAX] {
            let mut walk = store.walk();
            let mut out = Vec::new();
            while !walk.is_done() {
                step(&store, &mut walk, limit, &mut out);
            }
            assert_eq!(
                String::from_utf8_lossy(&out),
                whole,
                "steps of {limit} bytes"
            );
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Encode the next part, about this many bytes.
        Step(usize),
        /// A new series (or an update of an old one).
        Add(u8, u8),
        /// Every series of a family removed (as a TTL does).
        Remove(u8),
        /// A reload changes a family's HELP: its first new sample replaces
        /// the family (a new one of the same name).
        Redefine(u8, u8),
        /// Another scrape, start to end: it merges new series into the list.
        OtherPage,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1usize..3_000).prop_map(Op::Step),
            3 => (0u8..6, 0u8..50).prop_map(|(f, l)| Op::Add(f, l)),
            1 => (0u8..6).prop_map(Op::Remove),
            1 => (0u8..6, 0u8..50).prop_map(|(f, l)| Op::Redefine(f, l)),
            1 => Just(Op::OtherPage),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Oracle: whatever happens to the store between two steps, the page
        /// is valid, every series that lived through the whole walk is on it
        /// exactly once, and none that was removed before the walk began is.
        #[test]
        fn a_page_walked_while_the_store_changes_stays_valid(
            before in proptest::collection::vec((0u8..6, 0u8..50), 0..200),
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let store = Store::default();
            let mut live = BTreeSet::new();
            for (f, l) in before {
                add(&store, f, l, 0);
                live.insert((f, l));
            }
            let mut walk = store.walk();
            let mut out = Vec::new();
            let mut removed = BTreeSet::new();
            // Each family's HELP version; a reload bumps the generation.
            let (mut versions, mut generation) = ([0; 6], 0);
            for op in ops {
                match op {
                    Op::Step(limit) => step(&store, &mut walk, limit, &mut out),
                    Op::Add(f, l) => { add(&store, f, l, versions[f as usize]); }
                    Op::Redefine(f, l) => {
                        generation += 1;
                        versions[f as usize] = generation;
                        store.set_mapping_generation(generation);
                        add(&store, f, l, generation);
                        removed.insert(f);
                    }
                    Op::Remove(f) => {
                        let name = format!("fam_{f}");
                        store.retire_where(|s| s.family_name() == name);
                        removed.insert(f);
                    }
                    Op::OtherPage => { render_to_string(&store); }
                }
            }
            while !walk.is_done() {
                step(&store, &mut walk, 1_000, &mut out);
            }
            let page = String::from_utf8(out).expect("the page is UTF-8");
            if let Err(e) = check::check(page.as_bytes()) {
                prop_assert!(false, "{e}\n{page}");
            }
            let seen = series_of(&page);
            for (key, n) in &seen {
                prop_assert_eq!(*n, 1, "{} twice", key);
            }
            for (f, l) in live.iter().filter(|(f, _)| !removed.contains(f)) {
                let key = format!("fam_{f}{{l=\"{l}\"}}");
                prop_assert!(seen.contains_key(&key), "{} missing", key);
            }
        }
    }
}
