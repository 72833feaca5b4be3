//! The collection model: every family, series and value, seen through one
//! borrowed view.
//!
//! A *source* (the store's StatsD series, the pushed groups, each part's
//! self-metrics) walks its families in name order and hands each family's head
//! ([`FamilyHead`]) and then each of its series ([`Labels`] and a [`Value`]) to
//! an [`Encoder`]. An encoder is one wire format: the text format and
//! OpenMetrics ([`crate::exposition::text`]), the remote-write protobuf. Nothing
//! is allocated per series on the way: names, HELP text, labels and the
//! histogram and summary cells are borrowed from the source for the length of
//! one call.
//!
//! Self-metrics come from small [`Collector`]s, each owned by the part that
//! counts (listener, ingest, push, relay, remote write, reload, scrapes), found
//! through a [`Registry`] that knows none of them by name.

use crate::vocab::MetricKind;
use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};

/// What a family is, apart from its series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FamilyHead<'a> {
    /// The family name.
    pub name: &'a str,
    /// Its type.
    pub kind: MetricKind,
    /// HELP text (empty: none).
    pub help: &'a str,
}

/// A series' labels, sorted by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Labels<'a> {
    /// As the store keeps them: `k="v",k2="v2"`, values escaped as the text
    /// format escapes them (`\\`, `\"`, `\n`), as [`crate::vocab::label_pairs`]
    /// writes them.
    Rendered(&'a str),
    /// Name and raw value pairs.
    Pairs(&'a [(&'a str, &'a str)]),
}

impl<'a> Labels<'a> {
    /// No labels at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Self::Rendered(s) => s.is_empty(),
            Self::Pairs(p) => p.is_empty(),
        }
    }

    /// Append the labels as `k="v",k2="v2"` (escaped), without braces.
    pub fn write_rendered(&self, out: &mut Vec<u8>) {
        match self {
            Self::Rendered(s) => out.extend_from_slice(s.as_bytes()),
            Self::Pairs(pairs) => {
                for (i, (k, v)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.extend_from_slice(b"=\"");
                    escape_value(out, v);
                    out.push(b'"');
                }
            }
        }
    }

    /// Each pair, the value unescaped (borrowed unless it had escapes).
    pub fn pairs(&self) -> LabelPairs<'a> {
        match *self {
            Self::Rendered(s) => LabelPairs::Rendered(s),
            Self::Pairs(p) => LabelPairs::Pairs(p.iter()),
        }
    }
}

/// Append a label value escaped as the text format wants it.
fn escape_value(out: &mut Vec<u8>, v: &str) {
    for b in v.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b => out.push(b),
        }
    }
}

/// The pairs of a [`Labels`] (see [`Labels::pairs`]).
#[derive(Clone, Debug)]
pub enum LabelPairs<'a> {
    /// What is left of a rendered label string.
    Rendered(&'a str),
    /// What is left of the pairs.
    Pairs(std::slice::Iter<'a, (&'a str, &'a str)>),
}

impl<'a> Iterator for LabelPairs<'a> {
    type Item = (&'a str, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Pairs(it) => it.next().map(|(k, v)| (*k, Cow::Borrowed(*v))),
            Self::Rendered(rest) => {
                let (pair, tail) = split_rendered_pair(rest)?;
                *rest = tail;
                Some(pair)
            }
        }
    }
}

/// The first `k="v"` of a rendered label string and what follows its comma.
/// `None` at the end (or on a string [`crate::vocab::label_pairs`] never writes).
fn split_rendered_pair(s: &str) -> Option<((&str, Cow<'_, str>), &str)> {
    let (name, rest) = s.split_once("=\"")?;
    let bytes = rest.as_bytes();
    let mut i = 0;
    let mut escaped = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => {
                escaped = true;
                i += 2;
            }
            b'"' => break,
            _ => i += 1,
        }
    }
    let raw = rest.get(..i)?;
    let tail = rest.get(i + 1..)?;
    let tail = tail.strip_prefix(',').unwrap_or(tail);
    let value = if escaped {
        Cow::Owned(unescape(raw))
    } else {
        Cow::Borrowed(raw)
    };
    Some(((name, value), tail))
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// One series' value, borrowed from its source for one call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// A counter's total.
    Counter(f64),
    /// A gauge's value.
    Gauge(f64),
    /// A value of no declared type.
    Untyped(f64),
    /// A summary: one value per quantile, the sum and count of all
    /// observations.
    Summary {
        /// The quantiles (each in [0, 1]), ascending as configured.
        quantiles: &'a [f64],
        /// The estimate for each quantile.
        values: &'a [f64],
        /// Sum of observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
    /// A histogram: cumulative counts per upper bound, `+Inf` last, and
    /// maybe native buckets too.
    Histogram {
        /// The finite upper bounds, ascending (one fewer than `cumulative`).
        bounds: &'a [f64],
        /// Observations at or below each bound, then in all (`+Inf`).
        cumulative: &'a [u64],
        /// Sum of observations.
        sum: f64,
        /// The native buckets, read after the classic ones (so their count
        /// is at least the classic `+Inf`); only the protobuf encoder writes
        /// them.
        native: Option<NativeValue<'a>>,
    },
    /// One sample of a pushed family, as it was pushed: its full name (the
    /// family's, or with `_sum`, `_count` or `_bucket`), its labels carrying
    /// any `le` or `quantile`.
    Sample {
        /// The sample name.
        name: &'a str,
        /// The value.
        value: f64,
    },
}

/// A native (sparse, exponential) histogram, as the protobuf exposition
/// writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NativeValue<'a> {
    /// Resolution: boundaries are powers of `2^(2^-schema)`.
    pub schema: i8,
    /// Observations with `|v|` at most this are in the zero bucket.
    pub zero_threshold: f64,
    /// Observations (NaN included).
    pub count: u64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Buckets above zero: spans `(offset, length)` and delta-encoded counts.
    pub positive: (&'a [(i32, u32)], &'a [i64]),
    /// Buckets below zero, the same way.
    pub negative: (&'a [(i32, u32)], &'a [i64]),
}

impl Value<'_> {
    /// A histogram's count of observations (its `+Inf` bucket).
    pub fn histogram_count(cumulative: &[u64]) -> u64 {
        cumulative.last().copied().unwrap_or(0)
    }

    /// The samples this value is written as in the text format and in remote
    /// write, in page order, each as `(suffix, le or quantile, value)`: the
    /// suffix its name adds to the family's (`""`, `_bucket`, `_sum`,
    /// `_count`). A pushed [`Value::Sample`] is one sample of its own name, so
    /// it yields nothing here: encoders write it as it came.
    #[inline(always)]
    pub fn for_each_sample(
        &self,
        mut f: impl FnMut(&'static str, Option<(&'static str, f64)>, f64),
    ) {
        match *self {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => f("", None, v),
            Value::Summary {
                quantiles,
                values,
                sum,
                count,
            } => {
                for (q, v) in quantiles.iter().zip(values) {
                    f("", Some(("quantile", *q)), *v);
                }
                f("_sum", None, sum);
                f("_count", None, count as f64);
            }
            Value::Histogram {
                bounds,
                cumulative,
                sum,
                ..
            } => {
                for (i, c) in cumulative.iter().enumerate() {
                    let le = bounds.get(i).copied().unwrap_or(f64::INFINITY);
                    f("_bucket", Some(("le", le)), *c as f64);
                }
                f("_sum", None, sum);
                f("_count", None, Value::histogram_count(cumulative) as f64);
            }
            Value::Sample { .. } => {}
        }
    }
}

/// One wire format, fed one family head and then its series.
///
/// Sources call [`Encoder::family`] once per family, in name order, then
/// [`Encoder::series`] for each of its series (with the same head again, so
/// an encoder need not copy it).
pub trait Encoder {
    /// A family starts.
    fn family(&mut self, head: FamilyHead<'_>);
    /// One series of the family that started last.
    fn series(&mut self, head: FamilyHead<'_>, labels: Labels<'_>, value: Value<'_>);
}

/// One self-metric value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SelfValue {
    /// A counter's or gauge's value (as the family's kind says).
    Number(f64),
    /// A summary without quantiles: sum and count.
    Summary {
        /// Sum of observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

/// One self-metric family, as a [`Collector`] reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct SelfFamily {
    /// Family name (under [`crate::vocab::SELF_PREFIX`]).
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Counter, gauge or summary.
    pub kind: MetricKind,
    /// Each series: its label pairs (sorted by name) and value.
    pub series: Vec<(SelfLabels, SelfValue)>,
}

/// A self-metric series' label pairs, sorted by name: fixed names, values
/// mostly fixed too (a few, such as a conflicting family's name, are not).
pub type SelfLabels = Vec<(&'static str, Cow<'static, str>)>;

/// Fixed label pairs as [`SelfLabels`].
pub fn self_labels(pairs: &[(&'static str, &'static str)]) -> SelfLabels {
    pairs.iter().map(|&(k, v)| (k, Cow::Borrowed(v))).collect()
}

impl SelfFamily {
    /// A family of one series without labels.
    pub fn single(name: &'static str, kind: MetricKind, help: &'static str, v: f64) -> Self {
        Self {
            name,
            help,
            kind,
            series: vec![(Vec::new(), SelfValue::Number(v))],
        }
    }

    /// A family of plain numbers, one series per label set.
    pub fn labelled(
        name: &'static str,
        kind: MetricKind,
        help: &'static str,
        series: impl IntoIterator<Item = (Vec<(&'static str, &'static str)>, f64)>,
    ) -> Self {
        Self {
            name,
            help,
            kind,
            series: series
                .into_iter()
                .map(|(l, v)| (self_labels(&l), SelfValue::Number(v)))
                .collect(),
        }
    }

    /// The head an encoder sees.
    pub fn head(&self) -> FamilyHead<'static> {
        FamilyHead {
            name: self.name,
            kind: self.kind,
            help: self.help,
        }
    }

    /// Hand the family and its series to `enc`.
    pub fn encode(&self, enc: &mut impl Encoder) {
        let head = self.head();
        enc.family(head);
        self.encode_series(enc);
    }

    /// Hand only the series to `enc` (the family has started).
    pub fn encode_series(&self, enc: &mut impl Encoder) {
        let head = self.head();
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (labels, v) in &self.series {
            pairs.clear();
            pairs.extend(labels.iter().map(|(k, v)| (*k, v.as_ref())));
            let value = match (*v, self.kind) {
                (SelfValue::Number(n), MetricKind::Counter) => Value::Counter(n),
                (SelfValue::Number(n), MetricKind::Gauge) => Value::Gauge(n),
                (SelfValue::Number(n), _) => Value::Untyped(n),
                (SelfValue::Summary { sum, count }, _) => Value::Summary {
                    quantiles: &[],
                    values: &[],
                    sum,
                    count,
                },
            };
            enc.series(head, Labels::Pairs(&pairs), value);
        }
    }
}

/// A part's self-metrics: what it counted, read on demand.
pub trait Collector: Send + Sync + 'static {
    /// Append this part's families (any order; the registry sorts).
    fn collect(&self, out: &mut Vec<SelfFamily>);
}

type Entry = (TypeId, Arc<dyn Any + Send + Sync>, Arc<dyn Collector>);

/// The self-metric collectors of one store. Each part asks for its own
/// collector ([`Registry::shared`]) and counts into it; a scrape reads them all
/// ([`Registry::collect`]) in the order they were first asked for.
#[derive(Default)]
pub struct Registry {
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.lock().len();
        f.debug_struct("Registry").field("collectors", &n).finish()
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The one collector of type `T` in this registry, made and registered the
    /// first time it is asked for.
    pub fn shared<T: Collector + Default>(&self) -> Arc<T> {
        let mut entries = self.lock();
        let id = TypeId::of::<T>();
        if let Some(found) = entries
            .iter()
            .find(|e| e.0 == id)
            .and_then(|e| Arc::clone(&e.1).downcast::<T>().ok())
        {
            return found;
        }
        let made = Arc::new(T::default());
        entries.push((
            id,
            Arc::clone(&made) as Arc<dyn Any + Send + Sync>,
            Arc::clone(&made) as Arc<dyn Collector>,
        ));
        made
    }

    /// Every family of every collector, sorted by name.
    pub fn collect(&self) -> Vec<SelfFamily> {
        let collectors: Vec<Arc<dyn Collector>> =
            self.lock().iter().map(|e| Arc::clone(&e.2)).collect();
        let mut out = Vec::new();
        for c in &collectors {
            c.collect(&mut out);
        }
        out.sort_by(|a, b| a.name.cmp(b.name));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rendered_labels_come_back_as_pairs() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("", &[]),
            ("a=\"1\"", &[("a", "1")]),
            ("a=\"\",b=\"x\"", &[("a", ""), ("b", "x")]),
            ("a=\"q\\\"\\\\\\n,=\"", &[("a", "q\"\\\n,=")]),
        ];
        for (rendered, want) in cases {
            let got: Vec<(&str, String)> = Labels::Rendered(rendered)
                .pairs()
                .map(|(k, v)| (k, v.into_owned()))
                .collect();
            let want: Vec<(&str, String)> = want.iter().map(|(k, v)| (*k, v.to_string())).collect();
            assert_eq!(got, want, "{rendered}");
        }
    }

    proptest! {
        /// Oracle: the label writer of the vocabulary, read back by `pairs`,
        /// and written again by `write_rendered`, is what it was.
        #[test]
        fn pairs_round_trip(values in proptest::collection::vec("[a-z\\\\\"\\n,= ]{0,6}", 0..5)) {
            let names = ["a", "b", "c", "d", "e"];
            let pairs: Vec<(&str, &str)> = names.iter().copied().zip(values.iter().map(String::as_str)).collect();
            let rendered = crate::vocab::label_pairs(pairs.iter().copied());
            let back: Vec<(&str, String)> = Labels::Rendered(&rendered).pairs().map(|(k, v)| (k, v.into_owned())).collect();
            let want: Vec<(&str, String)> = pairs.iter().map(|(k, v)| (*k, v.to_string())).collect();
            prop_assert_eq!(back, want);
            let mut again = Vec::new();
            Labels::Pairs(&pairs).write_rendered(&mut again);
            prop_assert_eq!(String::from_utf8_lossy(&again), rendered);
        }
    }

    #[derive(Default)]
    struct Two;
    impl Collector for Two {
        fn collect(&self, out: &mut Vec<SelfFamily>) {
            out.push(SelfFamily::single("z", MetricKind::Gauge, "Z.", 1.0));
            out.push(SelfFamily::single("a", MetricKind::Counter, "A.", 2.0));
        }
    }

    #[test]
    fn a_registry_holds_one_collector_per_type_and_sorts_families() {
        let r = Registry::default();
        let first = r.shared::<Two>();
        let again = r.shared::<Two>();
        assert!(Arc::ptr_eq(&first, &again));
        let names: Vec<&str> = r.collect().iter().map(|f| f.name).collect();
        assert_eq!(names, ["a", "z"]);
    }
}
