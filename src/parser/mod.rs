//! StatsD line parser: bytes in, borrowed samples out.
//!
//! The parser works in place on the receive buffer and allocates nothing. A
//! datagram is split into lines on `\n` (a trailing `\r` is dropped), each line
//! into one or more [`Sample`]s. Tags stay as raw byte slices inside the sample;
//! they are only decoded into labels (see [`tags`]) when a series is seen for the
//! first time, so the hot path never touches them beyond hashing.
//!
//! The grammar and the error reasons follow statsd_exporter's line parser:
//!
//! ```text
//! line    = name [nametags] ":" samples
//! samples = sample *(":" sample)            ; multi-sample, not with |# tags
//!         / value *(":" value) "|" rest    ; extended aggregation, ms/h/d only
//! sample  = value "|" type *("|" component) ; at most 8 "|"-separated parts
//! component = "@" rate / "#" tags / "c:" container-id / "T" unix-seconds
//! ```
//!
//! Every rejection is a [`ParseError`] with a stable reason string; one bad line or
//! sample never affects its neighbours.
//!
//! Most lines are plain, `name:value|type` with no tags, rate or second sample:
//! [`start_line`] recognises one from the same vector pass that finds a line's
//! delimiters and builds its sample directly; every other line goes the
//! general way ([`Rest::samples`]), which is also the shortcut's oracle.
//!
//! May import: vocab.

pub mod tags;

use memchr::memchr;

/// A StatsD metric type, from the `|type` field of a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// `c`: a counter increment, divided by the sample rate.
    Counter,
    /// `g`: a gauge, absolute or relative (`+`/`-` prefix).
    Gauge,
    /// `ms`: a timer in milliseconds, observed in seconds.
    Timer,
    /// `h`: a histogram observation, observed as sent.
    Histogram,
    /// `d`: a distribution observation, observed as sent.
    Distribution,
    /// `s`: a set member; the series counts distinct members.
    Set,
}

impl MetricType {
    fn from_bytes(b: &[u8]) -> Option<Self> {
        match b {
            b"c" => Some(Self::Counter),
            b"g" => Some(Self::Gauge),
            b"ms" => Some(Self::Timer),
            b"h" => Some(Self::Histogram),
            b"d" => Some(Self::Distribution),
            b"s" => Some(Self::Set),
            _ => None,
        }
    }

    /// True for the types observed into a summary or histogram (`ms`, `h`, `d`).
    pub fn is_observer(self) -> bool {
        matches!(self, Self::Timer | Self::Histogram | Self::Distribution)
    }

    /// A small stable code, used in cache keys.
    pub fn code(self) -> u8 {
        match self {
            Self::Counter => b'c',
            Self::Gauge => b'g',
            Self::Timer => b'm',
            Self::Histogram => b'h',
            Self::Distribution => b'd',
            Self::Set => b's',
        }
    }
}

/// Why a line or sample was rejected. The reason strings are statsd_exporter's
/// `reason` label values where it has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParseError {
    /// No `:` after the name, an empty name, a control byte in the name, or
    /// bytes that are not UTF-8.
    MalformedLine,
    /// Tags in the name (InfluxDB/Librato/SignalFX) and DogStatsD tags on one line.
    MixedTaggingStyles,
    /// No `|type` after the value.
    NotEnoughPartsAfterColon,
    /// `v1:v2|type` with a type other than `ms`, `h` or `d`.
    InvalidExtendedAggregateType,
    /// Fewer than 2 or more than 8 `|` parts, an empty part, or a repeated tag section.
    MalformedComponent,
    /// A value that is not a number (or out of range, or not finite where it must be).
    MalformedValue,
    /// A sample rate that is not a number in (0, 1], or an unknown `|` section.
    InvalidSampleFactor,
    /// A `|c` section that is not `|c:<container id>`.
    MalformedContainerId,
    /// A `|T` section that is not `|T<unix seconds>`.
    MalformedTimestamp,
    /// An unknown metric type.
    IllegalEvent,
    /// A line longer than the configured limit (promstatsd's own reason).
    LineTooLong,
}

impl ParseError {
    /// Every error, in a fixed order (for counters indexed by error).
    pub const ALL: [ParseError; 11] = [
        Self::MalformedLine,
        Self::MixedTaggingStyles,
        Self::NotEnoughPartsAfterColon,
        Self::InvalidExtendedAggregateType,
        Self::MalformedComponent,
        Self::MalformedValue,
        Self::InvalidSampleFactor,
        Self::MalformedContainerId,
        Self::MalformedTimestamp,
        Self::IllegalEvent,
        Self::LineTooLong,
    ];

    /// The `reason` label value for this error.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MalformedLine => "malformed_line",
            Self::MixedTaggingStyles => "mixed_tagging_styles",
            Self::NotEnoughPartsAfterColon => "not_enough_parts_after_colon",
            Self::InvalidExtendedAggregateType => "invalid_extended_aggregate_type",
            Self::MalformedComponent => "malformed_component",
            Self::MalformedValue => "malformed_value",
            Self::InvalidSampleFactor => "invalid_sample_factor",
            Self::MalformedContainerId => "malformed_container_id",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::IllegalEvent => "illegal_event",
            Self::LineTooLong => "line_too_long",
        }
    }

    /// Position of this error in [`ParseError::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

/// Which tag styles the parser recognises (statsd_exporter's
/// `--statsd.parse-*-tags` flags; all on by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseOptions {
    /// DogStatsD `|#k:v,k2:v2`.
    pub dogstatsd: bool,
    /// InfluxDB `name,k=v:1|c`.
    pub influxdb: bool,
    /// Librato `name#k=v:1|c`.
    pub librato: bool,
    /// SignalFX `name[k=v]:1|c`.
    pub signalfx: bool,
    /// Longest line accepted, in bytes; longer lines are refused (`line_too_long`).
    pub max_line_length: usize,
}

/// Default for [`ParseOptions::max_line_length`].
pub const DEFAULT_MAX_LINE_LENGTH: usize = 16 * 1024;

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            dogstatsd: true,
            influxdb: true,
            librato: true,
            signalfx: true,
            max_line_length: DEFAULT_MAX_LINE_LENGTH,
        }
    }
}

/// Where the tags embedded in a metric name come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NameTagStyle {
    /// No tags in the name.
    None,
    /// `name,k=v,k2=v2`.
    Influx,
    /// `name#k=v,k2=v2`.
    Librato,
    /// `name[k=v,k2=v2]suffix`.
    SignalFx,
    /// A SignalFX `[` without `]` (or the reverse): the name is kept as sent and
    /// one tag error is counted.
    SignalFxUnbalanced,
}

/// A sample's value: a number, or a member for sets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    /// The parsed number (sign included).
    Number(f64),
    /// The raw member of a set sample.
    Member(&'a [u8]),
}

/// One parsed sample, borrowing from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample<'a> {
    /// The whole name section as sent (name plus any InfluxDB/Librato/SignalFX tags):
    /// with `dog_tags`, `container_id` and `metric_type` it identifies the series.
    pub name_section: &'a [u8],
    /// The metric name without embedded tags: `name_head` followed by `name_tail`
    /// (the tail is only non-empty for SignalFX names with text after `]`).
    pub name_head: &'a [u8],
    /// See `name_head`.
    pub name_tail: &'a [u8],
    /// How the name section carries tags.
    pub name_tag_style: NameTagStyle,
    /// The raw embedded tags (`k=v,k2=v2`), empty if none.
    pub name_tags: &'a [u8],
    /// The raw DogStatsD tags after `|#` (`k:v,k2:v2`), empty if none or if
    /// DogStatsD parsing is off.
    pub dog_tags: &'a [u8],
    /// The DogStatsD container id after `|c:`, empty if none.
    pub container_id: &'a [u8],
    /// The metric type.
    pub metric_type: MetricType,
    /// The value.
    pub value: Value<'a>,
    /// True when the value began with `+` or `-` (a relative gauge update).
    pub relative: bool,
    /// The sample rate in (0, 1]; 1 when absent (or given as 0, as statsd_exporter).
    pub sample_rate: f64,
}

/// Iterate over the lines of a datagram (or of a TCP chunk ending in a newline):
/// split on `\n`, a trailing `\r` removed, empty lines skipped.
pub fn lines(buf: &[u8]) -> Lines<'_> {
    Lines { rest: buf }
}

/// Iterator returned by [`lines`].
#[derive(Clone, Debug)]
pub struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let (line, rest) = match find_newline(self.rest) {
                Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
                None => (self.rest, &[][..]),
            };
            self.rest = rest;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if !line.is_empty() {
                return Some(line);
            }
        }
    }
}

/// Position of the first `\n`: inline 16-byte steps on x86_64, as lines are
/// short and a call into `memchr` costs more than the search.
#[inline]
fn find_newline(buf: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        simd::find(b'\n', buf)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        memchr(b'\n', buf)
    }
}

/// Parse one line (without its newline) into samples.
///
/// The iterator yields one `Ok(Sample)` per sample, an `Err` per rejected sample,
/// or a single `Err` when the whole line is rejected.
#[inline(always)]
pub fn parse_line(line: &[u8], opts: ParseOptions) -> LineSamples<'_> {
    match start_line(line, opts) {
        // Kept as its parts: a whole sample in `Mode` would make every line's
        // iterator larger (a tagged line cost 95 instructions more).
        LineStart::Plain(s) => LineSamples {
            head: Some(Head {
                name_section: s.name_section,
                name_head: s.name_head,
                name_tail: &[],
                style: NameTagStyle::None,
                name_tags: &[],
                dogstatsd: opts.dogstatsd,
            }),
            mode: Mode::Ready(Some((s.metric_type, s.value, s.relative))),
        },
        LineStart::Other(rest) => rest.samples(),
    }
}

/// How a line starts, after one pass over its bytes: see [`start_line`].
#[derive(Clone, Debug)]
pub enum LineStart<'a> {
    /// A plain line's one sample.
    Plain(Sample<'a>),
    /// Any other line, for [`Rest::samples`].
    Other(Rest<'a>),
}

/// A line for the general path, with what the first pass found in it.
#[derive(Clone, Debug)]
pub struct Rest<'a> {
    line: &'a [u8],
    opts: ParseOptions,
    scan: Result<Option<Scan>, ParseError>,
}

impl<'a> Rest<'a> {
    /// The line's samples and errors, as [`parse_line`] yields them.
    #[inline(always)]
    pub fn samples(self) -> LineSamples<'a> {
        match self.scan {
            Ok(scan) => general_line(self.line, self.opts, scan),
            Err(e) => failed(e),
        }
    }
}

/// Start parsing `line`: a plain line (`name:value|type`, the most common
/// kind) is parsed whole into its sample; any other is handed on with its
/// delimiters. The ingest loop's entry: the plain sample needs no iterator
/// around it (`parse_line` is this plus one).
#[inline(always)]
pub fn start_line(line: &[u8], opts: ParseOptions) -> LineStart<'_> {
    let rest = |scan| LineStart::Other(Rest { line, opts, scan });
    if line.len() > opts.max_line_length {
        return rest(Err(ParseError::LineTooLong));
    }
    match shape(line) {
        Shape::Plain { colon, pipe } => match plain_sample(line, colon, pipe) {
            Some(s) => LineStart::Plain(s),
            None => rest(Ok(scan(line))),
        },
        Shape::Other(scan) => rest(Ok(scan)),
    }
}

/// The iterator of a line rejected whole.
fn failed<'a>(e: ParseError) -> LineSamples<'a> {
    LineSamples {
        head: None,
        mode: Mode::Failed(Some(e)),
    }
}

/// The general path over a line `scan` was made of.
#[inline(always)]
fn general_line(line: &[u8], opts: ParseOptions, scan: Option<Scan>) -> LineSamples<'_> {
    match split_line(line, opts, scan) {
        Ok(state) => state,
        Err(e) => failed(e),
    }
}

/// What one pass over a line's bytes found.
enum Shape {
    /// A plain line, `name:value|type`: where its `:` and `|` are. Only the
    /// vector pass recognises one; other targets take the general path.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Plain { colon: usize, pipe: usize },
    /// Any other line, with its delimiters (`None`: no `:`).
    Other(Option<Scan>),
}

/// Classify `line` in one pass: a line of at most 64 bytes is classified by
/// the vector code once, for the plain test and, failing it, the scan.
#[inline(always)]
fn shape(line: &[u8]) -> Shape {
    #[cfg(target_arch = "x86_64")]
    if line.len() <= simd::LIMIT {
        let m = simd::masks(line);
        return match simd::plain(&m, line.len()) {
            Some((colon, pipe)) => Shape::Plain { colon, pipe },
            None => Shape::Other(simd::scan_masks(&m, line.len())),
        };
    }
    Shape::Other(scan(line))
}

/// The sample of a plain line whose `:` and `|` are at `colon` and `pipe`,
/// or `None` when the general path would refuse it (an empty name, a bad
/// value or type), so that path says why.
///
/// Most StatsD lines are plain. Their sample is built straight from the two
/// delimiters, without the general path's name splitting, sample iteration
/// and component loop. The load harness's counter lines, datagram to series,
/// went from 1,009 to 758 instructions a line with it (`examples/ingest_rounds.rs`
/// under cachegrind; BENCHMARKS.md). The general path is its oracle
/// ([`plain_agrees`], a property test and the fuzz target).
#[inline(always)]
fn plain_sample(line: &[u8], colon: usize, pipe: usize) -> Option<Sample<'_>> {
    let name = line.get(..colon).filter(|n| !n.is_empty())?;
    let raw = line.get(colon + 1..pipe)?;
    let metric_type = MetricType::from_bytes(line.get(pipe + 1..)?)?;
    let value = match metric_type {
        MetricType::Set if raw.is_empty() => return None,
        MetricType::Set => Value::Member(raw),
        t => match parse_number(raw)? {
            v if v.is_finite() || t == MetricType::Gauge => Value::Number(v),
            _ => return None,
        },
    };
    let relative = matches!(raw.first(), Some(b'+' | b'-'));
    Some(plain_parts(name, metric_type, value, relative))
}

/// The sample of a plain line: `name` without tags, rate 1.
#[inline(always)]
fn plain_parts<'a>(
    name: &'a [u8],
    metric_type: MetricType,
    value: Value<'a>,
    relative: bool,
) -> Sample<'a> {
    Sample {
        name_section: name,
        name_head: name,
        name_tail: &[],
        name_tag_style: NameTagStyle::None,
        name_tags: &[],
        dog_tags: &[],
        container_id: &[],
        metric_type,
        value,
        relative,
        sample_rate: 1.0,
    }
}

/// True when the plain-line shortcut, where it takes `line`, gives what the
/// general path gives (for the property test and the fuzz target).
#[doc(hidden)]
pub fn plain_agrees(line: &[u8], opts: ParseOptions) -> bool {
    match start_line(line, opts) {
        // Compared as printed, so that a NaN equals itself (and the printed
        // `f64` tells every other value apart).
        LineStart::Plain(s) => {
            let general: Vec<_> = general_line(line, opts, scan(line)).collect();
            format!("{general:?}") == format!("{:?}", [Ok::<_, ParseError>(s)])
        }
        LineStart::Other(_) => true,
    }
}

/// The name part shared by all samples of a line.
#[derive(Clone, Copy, Debug)]
struct Head<'a> {
    name_section: &'a [u8],
    name_head: &'a [u8],
    name_tail: &'a [u8],
    style: NameTagStyle,
    name_tags: &'a [u8],
    /// Whether a `|#` section's tags are kept (`--statsd.parse-dogstatsd-tags`);
    /// when off the section is still recognised, and skipped.
    dogstatsd: bool,
}

#[derive(Clone, Debug)]
enum Mode<'a> {
    Failed(Option<ParseError>),
    /// A plain line's sample, parsed whole (its type, value and sign, the
    /// name being the head's); `None` once yielded.
    Ready(Option<(MetricType, Value<'a>, bool)>),
    /// One sample, already split into its value and `type|components`; `None`
    /// once yielded.
    Single(Option<(&'a [u8], &'a [u8])>),
    /// `rest` holds `sample(:sample)*`, split on ':'; `None` once every sample
    /// was yielded.
    Samples {
        rest: Option<&'a [u8]>,
    },
    /// `values` holds `v(:v)*`, all sharing `suffix` (`type|components`).
    Extended {
        values: Option<&'a [u8]>,
        suffix: &'a [u8],
    },
}

/// Iterator over the samples of one line; see [`parse_line`].
#[derive(Clone, Debug)]
pub struct LineSamples<'a> {
    head: Option<Head<'a>>,
    mode: Mode<'a>,
}

#[inline(always)]
fn split_line(
    line: &[u8],
    opts: ParseOptions,
    scan: Option<Scan>,
) -> Result<LineSamples<'_>, ParseError> {
    let Scan {
        colon,
        tag_chars,
        unusual,
        first_pipe,
        colon_in_value,
        more_colons,
        dog,
    } = scan.ok_or(ParseError::MalformedLine)?;
    if colon == 0 {
        return Err(ParseError::MalformedLine);
    }
    let name_section = &line[..colon];
    let after = &line[colon + 1..];
    if unusual && !usable(line, colon) {
        return Err(ParseError::MalformedLine);
    }
    let head = if tag_chars {
        split_name(name_section, opts)
    } else {
        Head {
            name_section,
            name_head: name_section,
            name_tail: &[],
            style: NameTagStyle::None,
            name_tags: &[],
            dogstatsd: opts.dogstatsd,
        }
    };
    if head.name_head.is_empty() && head.name_tail.is_empty() {
        return Err(ParseError::MalformedLine);
    }
    if dog && tags::has_valid_tag(head.name_tags, b'=', head.style) {
        return Err(ParseError::MixedTaggingStyles);
    }
    let pipe = first_pipe.ok_or(ParseError::NotEnoughPartsAfterColon)?;
    let first_value = &after[..pipe];
    let suffix = &after[pipe + 1..];
    let mode = if colon_in_value {
        let type_end = find(b'|', suffix).unwrap_or(suffix.len());
        match MetricType::from_bytes(&suffix[..type_end]) {
            Some(t) if t.is_observer() => Mode::Extended {
                values: Some(first_value),
                suffix,
            },
            _ => return Err(ParseError::InvalidExtendedAggregateType),
        }
    } else {
        if dog || !more_colons {
            // With DogStatsD tags a line holds one sample; without, samples are
            // split on ':', and with no ':' after the first sample there is one.
            Mode::Single(Some((first_value, suffix)))
        } else {
            Mode::Samples { rest: Some(after) }
        }
    };
    Ok(LineSamples {
        head: Some(head),
        mode,
    })
}

/// Where a line's delimiters are, found in one pass over its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scan {
    /// The first `:` (end of the name section).
    colon: usize,
    /// `#`, `,`, `[` or `]` in the name section (tags may be embedded).
    tag_chars: bool,
    /// A byte below 0x20 or from 0x7f up anywhere: the line must be checked
    /// (UTF-8, and no control byte in the name).
    unusual: bool,
    /// The first `|` after the name, relative to the byte after `colon`.
    first_pipe: Option<usize>,
    /// A `:` between the name's colon and the first `|` (several values).
    colon_in_value: bool,
    /// A `:` after the first `|` (several samples, or a tag value).
    more_colons: bool,
    /// `|#` after the name (DogStatsD tags).
    dog: bool,
}

/// True when the vector scan and the byte loop agree on `line` (for the fuzz
/// target, which checks it on every line it makes).
#[doc(hidden)]
pub fn scans_agree(line: &[u8]) -> bool {
    scan(line) == scan_bytes(line)
}

/// Find the delimiters of `line`; `None` when it has no `:`.
#[inline]
fn scan(line: &[u8]) -> Option<Scan> {
    #[cfg(target_arch = "x86_64")]
    {
        if line.len() <= simd::LIMIT {
            return simd::scan(line);
        }
        // A longer line (DogStatsD tags): the vector scan of its first 64 bytes
        // usually finds the name, the value and the `|#`, and then the rest only
        // matters for `:` and non-ASCII bytes.
        let (head, tail) = line.split_at(simd::LIMIT);
        if let Some(mut s) = simd::scan(head).filter(|s| s.first_pipe.is_some()) {
            if s.dog {
                let (unusual, colons) = tail.iter().fold((false, false), |(u, c), &b| {
                    (u | is_unusual(b), c | (b == b':'))
                });
                s.unusual |= unusual;
                s.more_colons |= colons;
            } else {
                let mut prev = head[simd::LIMIT - 1];
                for &b in tail {
                    s.unusual |= is_unusual(b);
                    s.dog |= b == b'#' && prev == b'|';
                    s.more_colons |= b == b':';
                    prev = b;
                }
            }
            return Some(s);
        }
    }
    scan_bytes(line)
}

/// [`scan`] one byte at a time: for long lines, other targets, and as the oracle
/// of the vector version.
fn scan_bytes(line: &[u8]) -> Option<Scan> {
    let mut unusual = false;
    let mut tag_chars = false;
    let mut colon = None;
    for (i, &b) in line.iter().enumerate() {
        if b == b':' {
            colon = Some(i);
            break;
        }
        unusual |= is_unusual(b);
        tag_chars |= matches!(b, b'#' | b',' | b'[' | b']');
    }
    let colon = colon?;
    let mut first_pipe = None;
    let mut colon_in_value = false;
    let mut more_colons = false;
    let mut dog = false;
    let mut prev = 0u8;
    for (i, &b) in line[colon + 1..].iter().enumerate() {
        unusual |= is_unusual(b);
        match b {
            b'|' if first_pipe.is_none() => first_pipe = Some(i),
            b'#' if prev == b'|' => dog = true,
            b':' if first_pipe.is_none() => colon_in_value = true,
            b':' => more_colons = true,
            _ => {}
        }
        prev = b;
    }
    Some(Scan {
        colon,
        tag_chars,
        unusual,
        first_pipe,
        colon_in_value,
        more_colons,
        dog,
    })
}

/// The SSE2 version of [`scan`] for lines of at most 64 bytes: one bit per byte
/// and byte class in a `u64`, so every question is a mask and a bit count.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::Scan;

    /// The longest line this version takes.
    pub(super) const LIMIT: usize = 64;
    use std::arch::x86_64::{
        __m128i, _mm_add_epi8, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm_subs_epi8,
    };

    /// One bit per byte for each class the grammar needs.
    #[derive(Default)]
    pub(super) struct Masks {
        colon: u64,
        pipe: u64,
        hash: u64,
        tag: u64,
        unusual: u64,
    }

    impl Masks {
        /// Move the bits gathered so far up by 16 and put the classes of
        /// `chunk`'s bytes from `skip` on below them: chunks go in from the
        /// line's end to its start, so every shift but `skip` is a constant.
        #[inline(always)]
        fn push(&mut self, chunk: &[u8; 16], skip: u32) {
            let bits = |m: i32| u64::from(m as u16) >> skip;
            // SAFETY: SSE2 is part of the x86_64 baseline, so every intrinsic here
            // is available on any CPU this code runs on; the load reads the 16
            // bytes `chunk` borrows and has no alignment requirement.
            let [colon, pipe, hash, tag, unusual] = unsafe {
                let v: __m128i = _mm_loadu_si128(chunk.as_ptr().cast());
                let eq = |c: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8));
                let hash = eq(b'#');
                let tag = _mm_or_si128(
                    _mm_or_si128(hash, eq(b',')),
                    _mm_or_si128(eq(b'['), eq(b']')),
                );
                // Sign bit set where b < 0x20 or b >= 0x7f: b + 1 (wrapping)
                // minus 0x21, saturating as signed bytes, is negative exactly
                // there. Two instructions; the movemask is the one `high`
                // (the bytes' own sign bits) took before.
                let unusual = _mm_subs_epi8(_mm_add_epi8(v, _mm_set1_epi8(1)), _mm_set1_epi8(0x21));
                [eq(b':'), eq(b'|'), hash, tag, unusual].map(|m| _mm_movemask_epi8(m))
            };
            self.colon = (self.colon << 16) | bits(colon);
            self.pipe = (self.pipe << 16) | bits(pipe);
            self.hash = (self.hash << 16) | bits(hash);
            self.tag = (self.tag << 16) | bits(tag);
            self.unusual = (self.unusual << 16) | bits(unusual);
        }
    }

    /// Bit `i` set where `chunk[i] == b`.
    #[inline(always)]
    fn eq_mask(chunk: &[u8; 16], b: u8) -> u32 {
        // SAFETY: SSE2 is part of the x86_64 baseline; the load reads the 16 bytes
        // `chunk` borrows and has no alignment requirement.
        let m = unsafe {
            let v: __m128i = _mm_loadu_si128(chunk.as_ptr().cast());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8)))
        };
        u32::from(m as u16)
    }

    /// The first position of `b` in `hay`.
    #[inline]
    pub(super) fn find(b: u8, hay: &[u8]) -> Option<usize> {
        let n = hay.len();
        let mut at = 0;
        while let Some(c) = hay
            .get(at..at + 16)
            .and_then(|c| <&[u8; 16]>::try_from(c).ok())
        {
            let m = eq_mask(c, b);
            if m != 0 {
                return Some(at + m.trailing_zeros() as usize);
            }
            at += 16;
        }
        if at == n {
            return None;
        }
        if let Some(c) = hay
            .get(n.wrapping_sub(16)..)
            .and_then(|c| <&[u8; 16]>::try_from(c).ok())
        {
            // The last 16 bytes, without the ones already searched.
            let m = eq_mask(c, b) >> (at + 16 - n);
            return (m != 0).then(|| at + m.trailing_zeros() as usize);
        }
        super::find(b, hay)
    }

    /// The byte classes of `line` (at most 64 bytes), one bit per byte.
    #[inline(always)]
    pub(super) fn masks(line: &[u8]) -> Masks {
        debug_assert!(line.len() <= LIMIT);
        let mut m = Masks::default();
        let n = line.len();
        if n < 16 {
            let mut buf = [0u8; 16];
            buf[..n].copy_from_slice(line);
            m.push(&buf, 0);
        } else {
            let full = n / 16;
            if n % 16 != 0 {
                // The last 16 bytes, without the ones the full chunks cover.
                if let Some(c) = line.get(n - 16..).and_then(|c| c.try_into().ok()) {
                    m.push(c, (16 - n % 16) as u32);
                }
            }
            for k in (0..full).rev() {
                if let Some(c) = line
                    .get(k * 16..k * 16 + 16)
                    .and_then(|c| c.try_into().ok())
                {
                    m.push(c, 0);
                }
            }
        }
        m
    }

    /// True when `m` has exactly one bit set.
    #[inline(always)]
    fn one_bit(m: u64) -> bool {
        m != 0 && m & (m - 1) == 0
    }

    /// The positions of the `:` and the `|` of a plain line of `n` bytes
    /// whose classes are `m`: one `:`, one `|` after it, and no tag character
    /// (`#`, `,`, `[`, `]`) or unusual byte anywhere. `None` for any other line.
    #[inline(always)]
    pub(super) fn plain(m: &Masks, n: usize) -> Option<(usize, usize)> {
        // Only the line's own bytes (a short line was padded with zeros).
        let own = u64::MAX >> (64 - n.max(1));
        if (m.tag | m.unusual) & own != 0 || !one_bit(m.colon) || !one_bit(m.pipe) {
            return None;
        }
        let (colon, pipe) = (m.colon.trailing_zeros(), m.pipe.trailing_zeros());
        (colon < pipe).then_some((colon as usize, pipe as usize))
    }

    /// See [`super::scan`]; `line` is at most 64 bytes.
    #[inline]
    pub(super) fn scan(line: &[u8]) -> Option<Scan> {
        scan_masks(&masks(line), line.len())
    }

    /// [`scan`] of a line of `n` bytes whose classes are `m`.
    #[inline(always)]
    pub(super) fn scan_masks(m: &Masks, n: usize) -> Option<Scan> {
        if m.colon == 0 {
            return None;
        }
        let colon = m.colon.trailing_zeros();
        let before = (1u64 << colon) - 1;
        // Bits after the colon (colon < 64, so no shift overflows).
        let after = !before & !(1u64 << colon);
        let pipes = m.pipe & after;
        let (first_pipe, before_pipe, after_pipe) = if pipes == 0 {
            (None, after, 0)
        } else {
            let p = pipes.trailing_zeros();
            let below = (1u64 << p) - 1;
            (
                Some((p - colon - 1) as usize),
                after & below,
                !below & !(1u64 << p),
            )
        };
        Some(Scan {
            colon: colon as usize,
            tag_chars: m.tag & before != 0,
            // Only the line's own bytes (a short line was padded with zeros).
            unusual: m.unusual & (u64::MAX >> (64 - n.max(1))) != 0,
            first_pipe,
            colon_in_value: m.colon & before_pipe != 0,
            more_colons: m.colon & after_pipe != 0,
            dog: (pipes << 1) & m.hash != 0,
        })
    }
}

/// The second look at a line the scan found [`is_unusual`] bytes in: it is
/// UTF-8, and its name (the bytes before `colon`) holds no control byte
/// (below 0x20, or 0x7f). No client means one, and a framing that leaked into
/// the text (a DogStatsD length prefix) shows as one. Out of line: most lines
/// never come here.
#[cold]
#[inline(never)]
fn usable(line: &[u8], colon: usize) -> bool {
    let name = line.get(..colon).unwrap_or(line);
    !name.iter().any(|&b| b < 0x20 || b == 0x7f) && std::str::from_utf8(line).is_ok()
}

/// A byte that makes a line worth a second look: a control byte, DEL, or
/// one of a multi-byte UTF-8 sequence.
#[inline(always)]
fn is_unusual(b: u8) -> bool {
    !(0x20..0x7f).contains(&b)
}

/// Position of `b` in a short slice (a plain loop beats `memchr`'s setup on the
/// few bytes of a StatsD field).
#[inline]
fn find(b: u8, s: &[u8]) -> Option<usize> {
    s.iter().position(|&c| c == b)
}

fn split_name(section: &[u8], opts: ParseOptions) -> Head<'_> {
    let plain = Head {
        name_section: section,
        name_head: section,
        name_tail: &[],
        style: NameTagStyle::None,
        name_tags: &[],
        dogstatsd: opts.dogstatsd,
    };
    if opts.signalfx {
        match (memchr(b'[', section), memchr(b']', section)) {
            (Some(open), Some(close)) if open < close => {
                return Head {
                    name_head: &section[..open],
                    name_tail: &section[close + 1..],
                    style: NameTagStyle::SignalFx,
                    name_tags: &section[open + 1..close],
                    ..plain
                };
            }
            (None, None) => {}
            // One bracket alone, or `]` before `[`: kept as sent, one tag error.
            _ => {
                return Head {
                    style: NameTagStyle::SignalFxUnbalanced,
                    ..plain
                }
            }
        }
    }
    let found = match (opts.librato, opts.influxdb) {
        (true, true) => memchr::memchr2(b'#', b',', section),
        (true, false) => memchr(b'#', section),
        (false, true) => memchr(b',', section),
        (false, false) => None,
    };
    match found {
        Some(i) => Head {
            name_head: &section[..i],
            style: if section[i] == b'#' {
                NameTagStyle::Librato
            } else {
                NameTagStyle::Influx
            },
            name_tags: &section[i + 1..],
            ..plain
        },
        None => plain,
    }
}

impl<'a> Iterator for LineSamples<'a> {
    type Item = Result<Sample<'a>, ParseError>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        let (value, rest) = match &mut self.mode {
            Mode::Failed(e) => return e.take().map(Err),
            Mode::Ready(parts) => {
                let (metric_type, value, relative) = parts.take()?;
                let head = self.head?;
                return Some(Ok(plain_parts(
                    head.name_section,
                    metric_type,
                    value,
                    relative,
                )));
            }
            Mode::Single(split) => split.take()?,
            Mode::Samples { rest } => {
                let sample = next_field(rest, b':')?;
                match find(b'|', sample) {
                    Some(p) => (&sample[..p], &sample[p + 1..]),
                    None => return Some(Err(ParseError::MalformedComponent)),
                }
            }
            Mode::Extended { values, suffix } => (next_field(values, b':')?, *suffix),
        };
        let head = self.head?;
        Some(parse_sample(head, value, rest))
    }
}

/// Take the next `sep`-separated field, as Go's `strings.Split` yields them: a
/// trailing separator leaves one empty field; `None` once all were taken.
fn next_field<'a>(rest: &mut Option<&'a [u8]>, sep: u8) -> Option<&'a [u8]> {
    let r = rest.take()?;
    match memchr(sep, r) {
        Some(i) => {
            *rest = Some(&r[i + 1..]);
            Some(&r[..i])
        }
        None => Some(r),
    }
}

#[inline(always)]
fn parse_sample<'a>(
    head: Head<'a>,
    value: &'a [u8],
    rest: &'a [u8],
) -> Result<Sample<'a>, ParseError> {
    // `rest` is "type|comp|comp..." (at most 7 parts: 8 with the value).
    // `rest` is "type[|components]". statsd_exporter checks the number of parts
    // (at most 8 with the value) before anything else.
    let (type_bytes, comps) = match find(b'|', rest) {
        None => (rest, None),
        Some(e) => {
            let comps = &rest[e + 1..];
            if comps.iter().filter(|&&c| c == b'|').count() + 3 > 8 {
                return Err(ParseError::MalformedComponent);
            }
            (&rest[..e], Some(comps))
        }
    };
    let metric_type = MetricType::from_bytes(type_bytes);
    let relative = matches!(value.first(), Some(b'+' | b'-'));
    let parsed = match metric_type {
        Some(MetricType::Set) => {
            if value.is_empty() {
                return Err(ParseError::MalformedValue);
            }
            Value::Member(value)
        }
        _ => Value::Number(parse_number(value).ok_or(ParseError::MalformedValue)?),
    };
    let mut sample = Sample {
        name_section: head.name_section,
        name_head: head.name_head,
        name_tail: head.name_tail,
        name_tag_style: head.style,
        name_tags: head.name_tags,
        dog_tags: &[],
        container_id: &[],
        metric_type: MetricType::Counter,
        value: parsed,
        relative,
        sample_rate: 1.0,
    };
    let mut seen_tags = false;
    let parts = comps.map(|c| c.split(|&b| b == b'|'));
    if parts.clone().is_some_and(|mut p| p.any(<[u8]>::is_empty)) {
        return Err(ParseError::MalformedComponent);
    }
    for comp in parts.into_iter().flatten() {
        let Some(&first) = comp.first() else {
            return Err(ParseError::MalformedComponent);
        };
        match first {
            b'@' => {
                let rate = parse_number(&comp[1..]).ok_or(ParseError::InvalidSampleFactor)?;
                sample.sample_rate = if rate == 0.0 {
                    1.0
                } else if rate > 0.0 && rate <= 1.0 {
                    rate
                } else {
                    return Err(ParseError::InvalidSampleFactor);
                };
            }
            b'#' => {
                if seen_tags {
                    return Err(ParseError::MalformedComponent);
                }
                seen_tags = true;
                if head.dogstatsd {
                    sample.dog_tags = &comp[1..];
                }
            }
            b'c' => match comp.strip_prefix(b"c:") {
                Some(id) if !id.is_empty() => sample.container_id = id,
                _ => return Err(ParseError::MalformedContainerId),
            },
            b'T' => {
                let digits = &comp[1..];
                let ok = !digits.is_empty()
                    && std::str::from_utf8(digits).is_ok_and(|s| s.parse::<i64>().is_ok());
                if !ok {
                    return Err(ParseError::MalformedTimestamp);
                }
            }
            _ => return Err(ParseError::InvalidSampleFactor),
        }
    }
    sample.metric_type = metric_type.ok_or(ParseError::IllegalEvent)?;
    if let Value::Number(v) = sample.value {
        if !v.is_finite() && sample.metric_type != MetricType::Gauge {
            // NaN or ±Inf would poison a counter or an observer's sum for good.
            return Err(ParseError::MalformedValue);
        }
    }
    Ok(sample)
}

/// Parse a number as Go's `strconv.ParseFloat` accepts it for decimal input:
/// optional sign, digits, fraction, exponent, `inf`/`infinity`/`nan`. A finite
/// literal that overflows to infinity is refused, as Go returns a range error.
#[inline]
pub fn parse_number(b: &[u8]) -> Option<f64> {
    // One digit, as nearly every counter increment (`1|c`) is: a compare and
    // a conversion instead of the decimal loop (counter lines, datagram to
    // series: 758 → 731 instructions, `examples/ingest_rounds.rs`).
    if let [d @ b'0'..=b'9'] = b {
        return Some(f64::from(d - b'0'));
    }
    // Fast path: the common `1|c` and `12.5|ms`.
    if let Some(v) = simple_decimal(b) {
        return Some(v);
    }
    let s = std::str::from_utf8(b).ok()?;
    let v: f64 = s.parse().ok()?;
    if v.is_infinite() && !b.iter().any(|c| matches!(c, b'i' | b'I')) {
        return None;
    }
    Some(v)
}

/// `[+-]digits[.digits]` with at most 15 digits: the mantissa is exact in an
/// `f64` and so is the power of ten, so one division gives the correctly rounded
/// result, the same bits `str::parse` gives (Clinger's fast path).
#[inline]
fn simple_decimal(b: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, digits) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    // 15 digits and a dot at most, so the mantissa cannot overflow.
    if digits.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut dot = None;
    for (i, &c) in digits.iter().enumerate() {
        let d = c.wrapping_sub(b'0');
        if d < 10 {
            mantissa = mantissa * 10 + u64::from(d);
        } else if c == b'.' && dot.is_none() {
            dot = Some(i);
        } else {
            return None;
        }
    }
    let (count, frac) = match dot {
        Some(i) => (digits.len() - 1, digits.len() - 1 - i),
        None => (digits.len(), 0),
    };
    if count == 0 || count > 15 {
        return None;
    }
    // Below 10^15, so the signed conversion (one instruction) is exact.
    let m = mantissa as i64 as f64;
    // An integer skips the division (a dozen cycles' latency on the ingest
    // thread's critical path); dividing by 1 would not change it.
    let v = if frac == 0 {
        m
    } else {
        m / POW10.get(frac).copied()?
    };
    Some(if neg { -v } else { v })
}

#[cfg(test)]
mod tests;
