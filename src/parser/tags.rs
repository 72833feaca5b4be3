//! Decoding a sample's raw tag slices into labels.
//!
//! This runs only when a series is seen for the first time (the ingest cache
//! remembers the result), so it may allocate. Rules follow statsd_exporter:
//! tags are `,`-separated; an empty tag, a tag without separator, or one with an
//! empty key or value is skipped and counted as a tag error; keys are escaped into
//! the Prometheus label charset; values are kept as sent; a later tag with the
//! same key wins.

use super::{NameTagStyle, Sample};
use crate::vocab::escape_name;
use memchr::memchr;

/// Labels decoded from one sample, and how many tag errors it had.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodedTags {
    /// `(escaped key, value)` pairs, sorted by key, keys unique.
    pub labels: Vec<(String, String)>,
    /// Tags that were skipped as malformed.
    pub errors: u32,
}

/// Decode the embedded name tags, DogStatsD tags and container id of a sample.
pub fn decode(sample: &Sample<'_>) -> DecodedTags {
    let mut out = DecodedTags::default();
    match sample.name_tag_style {
        NameTagStyle::None => {}
        NameTagStyle::SignalFxUnbalanced => out.errors += 1,
        NameTagStyle::Influx | NameTagStyle::Librato | NameTagStyle::SignalFx => {
            for_each_tag(sample.name_tags, |tag| decode_tag(tag, b'=', &mut out));
        }
    }
    for_each_tag(sample.dog_tags, |tag| {
        let tag = tag.strip_prefix(b"#").unwrap_or(tag);
        decode_tag(tag, b':', &mut out);
    });
    if !sample.container_id.is_empty() {
        out.labels.push((
            "container_id".to_owned(),
            String::from_utf8_lossy(sample.container_id).into_owned(),
        ));
    }
    // Later tags win: a stable sort keeps the order of equal keys, keep the last.
    out.labels.sort_by(|a, b| a.0.cmp(&b.0));
    let mut deduped: Vec<(String, String)> = Vec::with_capacity(out.labels.len());
    for (k, v) in out.labels.drain(..) {
        match deduped.last_mut() {
            Some(last) if last.0 == k => last.1 = v,
            _ => deduped.push((k, v)),
        }
    }
    out.labels = deduped;
    out
}

/// True if `segment` holds at least one well-formed `k<sep>v` tag (used to detect
/// a line that mixes name tags with DogStatsD tags, as statsd_exporter does).
pub fn has_valid_tag(segment: &[u8], sep: u8, style: NameTagStyle) -> bool {
    if matches!(style, NameTagStyle::None | NameTagStyle::SignalFxUnbalanced) {
        return false;
    }
    let mut found = false;
    for_each_tag(segment, |tag| {
        if let Some(i) = memchr(sep, tag) {
            found |= i > 0 && i + 1 < tag.len();
        }
    });
    found
}

/// Call `f` for every `,`-separated tag; a trailing `,` adds no empty tag.
fn for_each_tag(segment: &[u8], mut f: impl FnMut(&[u8])) {
    let mut rest = segment;
    while !rest.is_empty() {
        match memchr(b',', rest) {
            Some(i) => {
                f(&rest[..i]);
                rest = &rest[i + 1..];
            }
            None => {
                f(rest);
                break;
            }
        }
    }
}

fn decode_tag(tag: &[u8], sep: u8, out: &mut DecodedTags) {
    let Some(i) = memchr(sep, tag) else {
        out.errors += 1;
        return;
    };
    let (k, v) = (&tag[..i], &tag[i + 1..]);
    if k.is_empty() || v.is_empty() {
        out.errors += 1;
        return;
    }
    let key = escape_name(&String::from_utf8_lossy(k));
    if key.starts_with("__") {
        // Reserved for Prometheus' own use: a scrape would refuse it.
        out.errors += 1;
        return;
    }
    out.labels
        .push((key, String::from_utf8_lossy(v).into_owned()));
}
