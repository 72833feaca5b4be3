//! Log lines in logfmt, as `--log.format=logfmt` (the default) promises and as
//! statsd_exporter writes them: one line per event of `key=value` pairs,
//! `ts=… level=… target=… msg="…"` and then the event's own fields; a value is
//! quoted when it is empty or holds a space, `=`, `"` or a control character.
//!
//! Owns: the event formatter for `tracing-subscriber` and the quoting rule,
//! and [`LogGate`], which keeps warnings a client can cause to one per interval.
//!
//! May import: nothing from this crate (a leaf).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The logfmt event formatter: `tracing_subscriber::fmt().event_format(Logfmt)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut ts = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = meta.level().as_str().to_ascii_lowercase();
        write!(writer, "ts={ts} level={level} target={}", meta.target())?;
        writer.write_str(" msg=")?;
        write_value(&mut writer, &fields.message)?;
        writer.write_str(&fields.rest)?;
        writeln!(writer)
    }
}

/// An event's message and its other fields, already as ` key=value` pairs.
#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Fields {
    fn pair(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
            return;
        }
        self.rest.push(' ');
        self.rest.push_str(field.name());
        self.rest.push('=');
        // Writing into a String cannot fail.
        let _ = write_value(&mut self.rest, value);
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.pair(field, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        self.pair(field, &text);
    }
}

/// Does `v` need quotes to stay one logfmt value?
pub fn needs_quotes(v: &str) -> bool {
    v.is_empty()
        || v.chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c.is_control())
}

/// Write `v` as one logfmt value: bare, or quoted with `"`, `\` and control
/// characters escaped.
pub fn write_value(out: &mut impl fmt::Write, v: &str) -> fmt::Result {
    if !needs_quotes(v) {
        return out.write_str(v);
    }
    out.write_char('"')?;
    for c in v.chars() {
        match c {
            '"' => out.write_str("\\\"")?,
            '\\' => out.write_str("\\\\")?,
            '\n' => out.write_str("\\n")?,
            '\r' => out.write_str("\\r")?,
            '\t' => out.write_str("\\t")?,
            c if c.is_control() => write!(out, "\\u{{{:x}}}", c as u32)?,
            c => out.write_char(c)?,
        }
    }
    out.write_char('"')
}

/// At most one warning per interval for an event any client can cause at will
/// (a refused push): a flood of them must not flood the log. The ones skipped
/// are counted and the next warning says how many; the event's own counter has
/// them all.
#[derive(Debug)]
pub struct LogGate {
    interval_secs: u64,
    /// Unix second from which the next warning may go out.
    next: AtomicU64,
    skipped: AtomicU64,
}

impl Default for LogGate {
    /// One warning per 10 seconds.
    fn default() -> Self {
        Self::new(10)
    }
}

impl LogGate {
    /// A gate letting one warning through per `interval_secs`.
    pub const fn new(interval_secs: u64) -> Self {
        Self {
            interval_secs,
            next: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// At `now` (Unix seconds): `Some(skipped)` when a warning may go out, with
    /// the number skipped since the last one; `None` when this one is skipped.
    pub fn admit(&self, now: u64) -> Option<u64> {
        // Relaxed throughout: a log-rate heuristic; a race lets at most one
        // extra warning through or counts one in the wrong message.
        let next = self.next.load(Ordering::Relaxed);
        let due = now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now + self.interval_secs,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            Some(self.skipped.swap(0, Ordering::Relaxed))
        } else {
            self.skipped.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(v: &str) -> String {
        let mut s = String::new();
        write_value(&mut s, v).unwrap();
        s
    }

    #[test]
    fn log_gate_lets_one_warning_through_per_interval() {
        let gate = LogGate::new(10);
        // (Unix second, what admit says)
        let cases = [
            (100, Some(0)),
            (100, None),
            (105, None),
            (109, None),
            (110, Some(3)),
            (110, None),
            (200, Some(1)),
        ];
        for (now, want) in cases {
            assert_eq!(gate.admit(now), want, "at {now}");
        }
    }

    #[test]
    fn values_are_quoted_only_when_needed() {
        let cases = [
            ("udp", "udp"),
            ("127.0.0.1:8125", "127.0.0.1:8125"),
            ("", "\"\""),
            ("two words", "\"two words\""),
            ("a=b", "\"a=b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash here", "\"back\\\\slash here\""),
            ("line\nbreak", "\"line\\nbreak\""),
            ("bell\u{7}", "\"bell\\u{7}\""),
        ];
        for (input, want) in cases {
            assert_eq!(quoted(input), want, "{input:?}");
        }
    }
}
