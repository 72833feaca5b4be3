//! Log lines in logfmt, as `--log.format=logfmt` (the default) promises and as
//! statsd_exporter writes them: one line per event of `key=value` pairs,
//! `ts=… level=… target=… msg="…"` and then the event's own fields; a value is
//! quoted when it is empty or holds a space, `=`, `"` or a control character.
//!
//! Owns: the event formatter for `tracing-subscriber` and the quoting rule.
//!
//! May import: nothing from this crate (a leaf).

use std::fmt;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(v: &str) -> String {
        let mut s = String::new();
        write_value(&mut s, v).unwrap();
        s
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
