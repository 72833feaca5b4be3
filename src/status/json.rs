//! The report as JSON (`GET /api/v1/status`). Written by hand: a few dozen
//! fields, strings escaped per RFC 8259, non-finite numbers as `null`.

use super::report::{Rated, Report};
use std::fmt::Write;

/// Append `s` as a JSON string.
pub fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Append a number (`null` when not finite).
pub fn number(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push_str("null");
    }
}

fn opt(out: &mut String, v: Option<f64>) {
    match v {
        Some(v) => number(out, v),
        None => out.push_str("null"),
    }
}

/// A JSON object being written: `"key":value` pairs with commas between.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        string(self.out, k);
        self.out.push(':');
        self.out
    }

    fn str(&mut self, k: &str, v: &str) {
        string(self.key(k), v);
    }

    fn num(&mut self, k: &str, v: f64) {
        number(self.key(k), v);
    }

    fn opt(&mut self, k: &str, v: Option<f64>) {
        opt(self.key(k), v);
    }

    fn end(self) {
        self.out.push('}');
    }
}

/// Append `items` as an array, each written by `f`.
fn array<T>(
    out: &mut String,
    items: impl IntoIterator<Item = T>,
    mut f: impl FnMut(&mut String, T),
) {
    out.push('[');
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, item);
    }
    out.push(']');
}

fn rated(out: &mut String, r: &Rated) {
    let mut o = Obj::new(out);
    o.num("total", r.total);
    o.opt("per_s_10s", r.per_s_10s);
    o.opt("per_s_5m", r.per_s_5m);
    o.end();
}

fn labels(out: &mut String, pairs: &[(&str, String)]) {
    let mut o = Obj::new(out);
    for (k, v) in pairs {
        o.str(k, v);
    }
    o.end();
}

fn spark(out: &mut String, values: &[f64]) {
    array(out, values, |o, v| number(o, *v));
}

/// The report as one JSON object.
pub fn write(r: &Report) -> String {
    let mut out = String::with_capacity(16 * 1024);
    let mut o = Obj::new(&mut out);
    o.str("version", r.version);
    o.num("uptime_seconds", r.uptime_seconds);
    array(o.key("listeners"), &r.listeners, |out, l| {
        let mut o = Obj::new(out);
        o.str("listener", l.name);
        rated(o.key("packets"), &l.packets);
        rated(o.key("lines"), &l.lines);
        rated(o.key("bytes"), &l.bytes);
        o.end();
    });
    let mut s = Obj::new(o.key("series"));
    s.num("total", r.series as f64);
    s.opt("max", r.max_series.map(|m| m as f64));
    s.num("families", r.families as f64);
    let mut t = Obj::new(s.key("by_type"));
    for (k, v) in &r.series_by_type {
        t.num(k, *v);
    }
    t.end();
    s.end();
    array(o.key("top_families"), &r.top_families, |out, f| {
        let mut o = Obj::new(out);
        o.str("name", &f.name);
        o.str("type", f.kind);
        o.num("series", f.series as f64);
        o.opt("samples_per_s", f.samples_per_s);
        o.end();
    });
    array(o.key("unmapped"), &r.unmapped, |out, u| {
        let mut o = Obj::new(out);
        o.str("statsd_name", &u.statsd_name);
        o.str("family", &u.family);
        o.opt("samples_per_s", u.samples_per_s);
        o.end();
    });
    array(o.key("conflicts"), &r.conflicts, |out, (name, n)| {
        let mut o = Obj::new(out);
        o.str("metric_name", name);
        o.num("samples", *n as f64);
        o.end();
    });
    array(o.key("counters"), &r.counters, |out, c| {
        let mut o = Obj::new(out);
        o.str("name", c.name);
        labels(o.key("labels"), &c.labels);
        o.num("value", c.value.total);
        o.opt("per_s_10s", c.value.per_s_10s);
        o.opt("per_s_5m", c.value.per_s_5m);
        let e = o.key("error");
        e.push_str(if c.error { "true" } else { "false" });
        o.end();
    });
    mapping(o.key("mapping"), r);
    let mut p = Obj::new(o.key("push"));
    p.num("groups_total", r.push_groups.1 as f64);
    array(p.key("groups"), &r.push_groups.0, |out, g| {
        let mut o = Obj::new(out);
        o.str("key", &g.key);
        o.num("series", g.series as f64);
        o.num("push_time_seconds", g.push_time);
        o.num("failure_time_seconds", g.failure_time);
        o.end();
    });
    p.end();
    array(
        o.key("remote_write"),
        &r.remote_write,
        |out, (name, l, v)| {
            let mut o = Obj::new(out);
            o.str("name", name);
            labels(o.key("labels"), l);
            o.num("value", *v);
            o.end();
        },
    );
    let mut h = Obj::new(o.key("history"));
    h.num("step_seconds", 1.0);
    spark(h.key("lines_per_s"), &r.spark_lines);
    spark(h.key("kernel_drops_per_s"), &r.spark_drops);
    spark(h.key("series"), &r.spark_series);
    h.end();
    o.end();
    out.push('\n');
    out
}

fn mapping(out: &mut String, r: &Report) {
    let m = &r.mapping;
    let mut o = Obj::new(out);
    o.str("source", &m.source);
    o.num("unmatched", m.unmatched as f64);
    match &m.last_reload {
        Some((t, err)) => {
            let mut l = Obj::new(o.key("last_reload"));
            l.num("time_seconds", *t);
            match err {
                Some(e) => l.str("error", e),
                None => l.key("error").push_str("null"),
            }
            l.end();
        }
        None => o.key("last_reload").push_str("null"),
    }
    array(o.key("rules"), &m.rules, |out, rule| {
        let mut o = Obj::new(out);
        o.opt("line", rule.line.map(|l| l as f64));
        o.str("match", &rule.pattern);
        o.str("match_type", rule.match_type);
        o.str("action", rule.action);
        o.num("matches", rule.matches as f64);
        o.end();
    });
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        let cases = [
            ("plain", "\"plain\""),
            ("a\"b\\c", "\"a\\\"b\\\\c\""),
            ("l\nt\tr\r", "\"l\\nt\\tr\\r\""),
            ("\u{1}x", "\"\\u0001x\""),
            ("ünï", "\"ünï\""),
        ];
        for (input, want) in cases {
            let mut out = String::new();
            string(&mut out, input);
            assert_eq!(out, want, "{input:?}");
        }
    }

    #[test]
    fn numbers_are_json_numbers_or_null() {
        let cases = [
            (1.0, "1"),
            (0.25, "0.25"),
            (f64::NAN, "null"),
            (f64::INFINITY, "null"),
        ];
        for (v, want) in cases {
            let mut out = String::new();
            number(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
    }
}
