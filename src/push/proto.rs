//! Push bodies in the delimited protobuf exposition, as the Go Pushgateway
//! client sends them by default (`Content-Type: application/vnd.google.protobuf;
//! proto=io.prometheus.client.MetricFamily; encoding=delimited`).
//!
//! Each `MetricFamily` is read, borrowing names and label values from the body,
//! and written out as the samples the text format would carry (a summary's
//! quantiles, `_sum` and `_count`; a histogram's cumulative `_bucket`s with
//! `+Inf`, `_sum` and `_count`), so a protobuf push goes through the very checks
//! of a text push ([`super::convert`], the store's). Field numbers are those of
//! `io/prometheus/client/metrics.proto`. A histogram with only native buckets
//! is refused (promstatsd keeps pushed histograms classic); the native fields
//! of one that has classic buckets too are skipped.

use super::body::{help_as_text, valid_pushed_label, ParsedFamily, ParsedSample};
use crate::vocab::{valid_name, write_float, MetricKind};
use std::borrow::Cow;

/// One field as read: its number and value.
#[derive(Clone, Copy, Debug)]
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

/// Reads the fields of one message.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.rest.split_first().ok_or("truncated varint")?;
            self.rest = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err("varint longer than 10 bytes".to_owned())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.rest.len() {
            return Err("truncated field".to_owned());
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    /// The next field, or `None` at the end of the message.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = match key & 7 {
            0 => Field::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                let mut le = [0u8; 8];
                le.copy_from_slice(b);
                Field::Fixed64(u64::from_le_bytes(le))
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "field too long")?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Field::Fixed32
            }
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok(Some((key >> 3, field)))
    }
}

fn text(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "a string that is not UTF-8".to_owned())
}

fn double(f: Field<'_>) -> f64 {
    match f {
        Field::Fixed64(bits) => f64::from_bits(bits),
        _ => 0.0,
    }
}

/// Parse a delimited protobuf body into families as the text parser returns them.
pub fn parse(body: &[u8]) -> Result<Vec<ParsedFamily<'_>>, String> {
    let mut outer = Reader { rest: body };
    let mut families: Vec<ParsedFamily<'_>> = Vec::new();
    while !outer.rest.is_empty() {
        let n = usize::try_from(outer.varint()?).map_err(|_| "message too long")?;
        let family = family(outer.take(n)?)?;
        if families.iter().any(|f| f.name == family.name) {
            return Err(format!("family {} appears twice", family.name));
        }
        families.push(family);
    }
    Ok(families)
}

fn kind_of(t: u64) -> Result<MetricKind, String> {
    Ok(match t {
        0 => MetricKind::Counter,
        1 => MetricKind::Gauge,
        2 => MetricKind::Summary,
        3 => MetricKind::Untyped,
        4 => MetricKind::Histogram,
        t => {
            return Err(format!(
                "unsupported metric type {t} (gauge histograms are not taken)"
            ))
        }
    })
}

fn family(msg: &[u8]) -> Result<ParsedFamily<'_>, String> {
    let mut r = Reader { rest: msg };
    let (mut name, mut help, mut kind) = ("", None, MetricKind::Counter);
    let mut metrics = Vec::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => name = text(b)?,
            (2, Field::Bytes(b)) => help = Some(Cow::Borrowed(help_as_text(text(b)?))),
            (3, Field::Varint(t)) => kind = kind_of(t)?,
            (4, Field::Bytes(b)) => metrics.push(b),
            _ => {}
        }
    }
    if !valid_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut fam = ParsedFamily {
        name,
        kind,
        help,
        samples: Vec::new(),
    };
    for m in metrics {
        metric(&mut fam, m)?;
    }
    Ok(fam)
}

/// The parts of one `Metric` the samples are made of.
#[derive(Default)]
struct Metric<'a> {
    labels: Vec<(&'a str, Cow<'a, str>)>,
    /// The value message and the field it came in.
    value: Option<(u64, &'a [u8])>,
    timestamp: Option<i64>,
}

fn metric<'a>(fam: &mut ParsedFamily<'a>, msg: &'a [u8]) -> Result<(), String> {
    let mut r = Reader { rest: msg };
    let mut m = Metric::default();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => m.labels.push(label_pair(b)?),
            (2 | 3 | 4 | 5 | 7, Field::Bytes(b)) => m.value = Some((n, b)),
            (6, Field::Varint(t)) => m.timestamp = Some(t as i64),
            _ => {}
        }
    }
    let Some((field, value)) = m.value else {
        return Err(format!("a metric of {} without a value", fam.name));
    };
    let want = match fam.kind {
        MetricKind::Gauge => 2,
        MetricKind::Counter => 3,
        MetricKind::Summary => 4,
        MetricKind::Untyped => 5,
        MetricKind::Histogram => 7,
    };
    if field != want {
        return Err(format!("a metric of {} does not match its type", fam.name));
    }
    match fam.kind {
        MetricKind::Summary => summary(fam, &m, value),
        MetricKind::Histogram => histogram(fam, &m, value),
        _ => {
            let mut v = 0.0;
            let mut r = Reader { rest: value };
            while let Some((n, f)) = r.next()? {
                if n == 1 {
                    v = double(f);
                }
            }
            let name = fam.name;
            push(fam, Cow::Borrowed(name), &m, None, v);
            Ok(())
        }
    }
}

fn label_pair(b: &[u8]) -> Result<(&str, Cow<'_, str>), String> {
    let mut r = Reader { rest: b };
    let (mut name, mut value) = ("", "");
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Bytes(b)) => name = text(b)?,
            (2, Field::Bytes(b)) => value = text(b)?,
            _ => {}
        }
    }
    if !valid_pushed_label(name) {
        return Err(format!("invalid label name {name:?}"));
    }
    Ok((name, Cow::Borrowed(value)))
}

/// Add one sample: `name`, the metric's labels plus `extra`, `v`.
fn push<'a>(
    fam: &mut ParsedFamily<'a>,
    name: Cow<'a, str>,
    m: &Metric<'a>,
    extra: Option<(&'a str, f64)>,
    v: f64,
) {
    let mut labels = m.labels.clone();
    if let Some((k, bound)) = extra {
        let mut s = Vec::new();
        write_float(&mut s, bound);
        labels.push((k, Cow::Owned(String::from_utf8_lossy(&s).into_owned())));
    }
    fam.samples.push(ParsedSample {
        name,
        labels,
        value: v,
        timestamp: m.timestamp,
    });
}

fn suffixed<'a>(fam: &ParsedFamily<'a>, suffix: &str) -> Cow<'a, str> {
    Cow::Owned(format!("{}{suffix}", fam.name))
}

fn summary<'a>(fam: &mut ParsedFamily<'a>, m: &Metric<'a>, msg: &'a [u8]) -> Result<(), String> {
    let mut r = Reader { rest: msg };
    let (mut count, mut sum) = (0u64, 0.0);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Varint(c)) => count = c,
            (2, f) => sum = double(f),
            (3, Field::Bytes(q)) => {
                let mut qr = Reader { rest: q };
                let (mut quantile, mut v) = (0.0, 0.0);
                while let Some((n, f)) = qr.next()? {
                    match n {
                        1 => quantile = double(f),
                        2 => v = double(f),
                        _ => {}
                    }
                }
                let name = fam.name;
                push(fam, Cow::Borrowed(name), m, Some(("quantile", quantile)), v);
            }
            _ => {}
        }
    }
    let (s, c) = (suffixed(fam, "_sum"), suffixed(fam, "_count"));
    push(fam, s, m, None, sum);
    push(fam, c, m, None, count as f64);
    Ok(())
}

fn histogram<'a>(fam: &mut ParsedFamily<'a>, m: &Metric<'a>, msg: &'a [u8]) -> Result<(), String> {
    let mut r = Reader { rest: msg };
    let (mut count, mut sum, mut native) = (0.0, 0.0, false);
    let mut buckets = Vec::new();
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Varint(c)) => count = c as f64,
            (4, f) => count = double(f),
            (2, f) => sum = double(f),
            (3, Field::Bytes(b)) => buckets.push(bucket(b)?),
            (5..=14, _) => native = true,
            _ => {}
        }
    }
    if buckets.is_empty() && native {
        return Err(format!(
            "{} is a native histogram; push histograms with classic buckets",
            fam.name
        ));
    }
    for &(le, c) in &buckets {
        let b = suffixed(fam, "_bucket");
        push(fam, b, m, Some(("le", le)), c);
    }
    if buckets.last().is_none_or(|(le, _)| *le != f64::INFINITY) {
        let b = suffixed(fam, "_bucket");
        push(fam, b, m, Some(("le", f64::INFINITY)), count);
    }
    let (s, c) = (suffixed(fam, "_sum"), suffixed(fam, "_count"));
    push(fam, s, m, None, sum);
    push(fam, c, m, None, count);
    Ok(())
}

/// `(upper_bound, cumulative count)` of a `Bucket`.
fn bucket(b: &[u8]) -> Result<(f64, f64), String> {
    let mut r = Reader { rest: b };
    let (mut le, mut c) = (0.0, 0.0);
    while let Some((n, f)) = r.next()? {
        match (n, f) {
            (1, Field::Varint(v)) => c = v as f64,
            (4, f) => c = double(f),
            (2, f) => le = double(f),
            _ => {}
        }
    }
    Ok((le, c))
}

#[cfg(test)]
mod tests;
