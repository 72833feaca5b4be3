//! The report as one HTML page (`GET /status`): no external assets (it must
//! work on an air-gapped node), readable on a phone, inline SVG sparklines,
//! refreshed every five seconds by a meta refresh.

use super::report::{Rated, Report};
use std::fmt::Write;

/// Append `s` escaped for HTML text and attribute values.
pub fn escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A number as people read it: integers whole, others with two decimals,
/// `–` when unknown.
fn num(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
        Some(v) if v.is_finite() => format!("{v:.2}"),
        _ => "–".to_owned(),
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0 auto;max-width:70em;padding:.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;width:100%;font-size:.9em}td,th{padding:.2em .4em;text-align:left;border-bottom:1px solid #eee}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.wrap{overflow-x:auto}\
.sparks{display:flex;flex-wrap:wrap;gap:1em}.spark{flex:1 1 16em}.spark svg{width:100%;height:3em;background:#f6f8fa}\
.err{color:#b00}.muted{color:#777}code{word-break:break-all}";

/// An SVG polyline of `values` (oldest first) scaled to its maximum.
pub fn sparkline(out: &mut String, values: &[f64]) {
    let max = values.iter().copied().fold(0.0f64, f64::max);
    let n = values.len().max(2) - 1;
    out.push_str("<svg viewBox=\"0 0 300 40\" preserveAspectRatio=\"none\" role=\"img\"><polyline fill=\"none\" stroke=\"#36c\" stroke-width=\"1.5\" points=\"");
    for (i, v) in values.iter().enumerate() {
        let x = 300.0 * i as f64 / n as f64;
        let y = if max > 0.0 {
            38.0 - 36.0 * v / max
        } else {
            38.0
        };
        let _ = write!(out, "{x:.1},{y:.1} ");
    }
    out.push_str("\"/></svg>");
}

fn spark(out: &mut String, id: &str, title: &str, values: &[f64]) {
    let last = values.last().copied();
    let max = values.iter().copied().fold(0.0f64, f64::max);
    let _ = write!(out, "<div class=\"spark\" id=\"{id}\"><b>{title}</b> now <span class=\"now\">{}</span>, max {}<br>", num(last), num(Some(max)));
    sparkline(out, values);
    out.push_str("</div>");
}

fn row(out: &mut String, cells: &[(&str, &str)]) {
    out.push_str("<tr>");
    for (class, text) in cells {
        if class.is_empty() {
            out.push_str("<td>");
        } else {
            let _ = write!(out, "<td class=\"{class}\">");
        }
        escape(out, text);
        out.push_str("</td>");
    }
    out.push_str("</tr>");
}

fn head(out: &mut String, id: &str, title: &str, cols: &[&str]) {
    let _ = write!(
        out,
        "<h2>{title}</h2><div class=\"wrap\"><table id=\"{id}\"><tr>"
    );
    for c in cols {
        match c.strip_prefix('#') {
            Some(c) => {
                let _ = write!(out, "<th class=\"n\">{c}</th>");
            }
            None => {
                let _ = write!(out, "<th>{c}</th>");
            }
        }
    }
    out.push_str("</tr>");
}

/// Close a table; one with no row under its head says "none".
fn end_table(out: &mut String) {
    if out.ends_with("</th></tr>") {
        out.push_str("<tr><td colspan=\"9\" class=\"muted\">none</td></tr>");
    }
    out.push_str("</table></div>");
}

fn rate_cells(r: &Rated) -> [String; 3] {
    [num(Some(r.total)), num(r.per_s_10s), num(r.per_s_5m)]
}

/// The report as a page.
pub fn write(r: &Report) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>promstatsd status</title>\
         <style>{STYLE}</style></head><body><h1>promstatsd {} status</h1>\
         <p>Up <span id=\"uptime\">{}</span> s. Series <b id=\"series\">{}</b> of {} \
         in {} families. <a href=\"/api/v1/status\">JSON</a> · <a href=\"/\">home</a></p>",
        r.version,
        num(Some(r.uptime_seconds.floor())),
        r.series,
        r.max_series
            .map_or("no limit".to_owned(), |m| m.to_string()),
        r.families,
    );
    out.push_str("<h2>Last 5 minutes</h2><div class=\"sparks\">");
    spark(&mut out, "spark-lines", "lines/s", &r.spark_lines);
    spark(&mut out, "spark-drops", "kernel drops/s", &r.spark_drops);
    spark(&mut out, "spark-series", "series", &r.spark_series);
    out.push_str("</div>");
    listeners(&mut out, r);
    families(&mut out, r);
    problems(&mut out, r);
    mapping(&mut out, r);
    push_and_remote(&mut out, r);
    out.push_str("</body></html>\n");
    out
}

fn listeners(out: &mut String, r: &Report) {
    head(
        out,
        "listeners",
        "Listeners",
        &[
            "listener",
            "#packets",
            "#packets/s 10 s",
            "#packets/s 5 min",
            "#lines",
            "#lines/s 10 s",
            "#lines/s 5 min",
        ],
    );
    for l in &r.listeners {
        let [p, p10, p5] = rate_cells(&l.packets);
        let [n, n10, n5] = rate_cells(&l.lines);
        row(
            out,
            &[
                ("", l.name),
                ("n", &p),
                ("n", &p10),
                ("n", &p5),
                ("n", &n),
                ("n", &n10),
                ("n", &n5),
            ],
        );
    }
    end_table(out);
}

fn families(out: &mut String, r: &Report) {
    head(
        out,
        "top-families",
        "Largest families",
        &["family", "type", "#series", "#samples/s"],
    );
    for f in &r.top_families {
        let series = f.series.to_string();
        row(
            out,
            &[
                ("family", &f.name),
                ("", f.kind),
                ("n series", &series),
                ("n", &num(f.samples_per_s)),
            ],
        );
    }
    end_table(out);
    head(
        out,
        "unmapped",
        "Unmapped StatsD names",
        &["StatsD name", "family", "#samples/s"],
    );
    for u in &r.unmapped {
        row(
            out,
            &[
                ("", &u.statsd_name),
                ("", &u.family),
                ("n", &num(u.samples_per_s)),
            ],
        );
    }
    end_table(out);
}

fn problems(out: &mut String, r: &Report) {
    head(
        out,
        "errors",
        "Errors, refusals and drops (non-zero)",
        &["counter", "labels", "#total", "#/s 10 s", "#/s 5 min"],
    );
    for c in r.counters.iter().filter(|c| c.error && c.value.total > 0.0) {
        let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let [t, r10, r5] = rate_cells(&c.value);
        row(
            out,
            &[
                ("err", c.name),
                ("", &labels.join(" ")),
                ("n", &t),
                ("n", &r10),
                ("n", &r5),
            ],
        );
    }
    end_table(out);
    head(
        out,
        "conflicts",
        "Type conflicts",
        &["family", "#refused samples"],
    );
    for (name, n) in &r.conflicts {
        row(out, &[("", name), ("n", &n.to_string())]);
    }
    end_table(out);
}

fn mapping(out: &mut String, r: &Report) {
    let m = &r.mapping;
    out.push_str("<h2>Mapping</h2><p>Source <code>");
    escape(out, &m.source);
    let _ = write!(
        out,
        "</code>, {} rules, {} names unmatched.",
        m.rules.len(),
        m.unmatched
    );
    match &m.last_reload {
        Some((t, None)) => {
            let _ = write!(
                out,
                " Last reload at {} (unix s): ok.",
                num(Some(t.floor()))
            );
        }
        Some((t, Some(e))) => {
            let _ = write!(
                out,
                " Last reload at {} (unix s) <span class=\"err\">failed: ",
                num(Some(t.floor()))
            );
            escape(out, e);
            out.push_str("</span>");
        }
        None => out.push_str(" No reload since start."),
    }
    out.push_str("</p>");
    head(
        out,
        "rules",
        "Rules",
        &["line", "match", "type", "action", "#matches"],
    );
    for rule in &m.rules {
        let line = rule.line.map_or("?".to_owned(), |l| l.to_string());
        row(
            out,
            &[
                ("n", &line),
                ("", &rule.pattern),
                ("", rule.match_type),
                ("", rule.action),
                ("n", &rule.matches.to_string()),
            ],
        );
    }
    end_table(out);
}

fn push_and_remote(out: &mut String, r: &Report) {
    let (groups, total) = &r.push_groups;
    head(
        out,
        "push-groups",
        &format!("Push groups ({total})"),
        &["group", "#series", "#last push (unix s)"],
    );
    for g in groups {
        row(
            out,
            &[
                ("", &g.key),
                ("n", &g.series.to_string()),
                ("n", &num(Some(g.push_time.floor()))),
            ],
        );
    }
    end_table(out);
    head(
        out,
        "remote-write",
        "Remote write",
        &["series", "labels", "#value"],
    );
    for (name, labels, v) in &r.remote_write {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        row(
            out,
            &[("", name), ("", &labels.join(" ")), ("n", &num(Some(*v)))],
        );
    }
    end_table(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let cases = [
            ("a<b>&\"'", "a&lt;b&gt;&amp;&quot;&#39;"),
            ("plain", "plain"),
        ];
        for (input, want) in cases {
            let mut out = String::new();
            escape(&mut out, input);
            assert_eq!(out, want);
        }
    }

    #[test]
    fn a_table_without_rows_says_none() {
        let cases: &[(&[&str], bool)] = &[(&[], true), (&["x"], false)];
        for (rows, none) in cases {
            let mut out = String::new();
            head(&mut out, "t", "T", &["a", "#b"]);
            for r in *rows {
                row(&mut out, &[("", r), ("n", "1")]);
            }
            end_table(&mut out);
            assert_eq!(out.contains(">none</td>"), *none, "{out}");
        }
    }

    #[test]
    fn a_sparkline_spans_the_box() {
        let mut out = String::new();
        sparkline(&mut out, &[0.0, 5.0, 10.0]);
        assert!(
            out.contains("points=\"0.0,38.0 150.0,20.0 300.0,2.0 \""),
            "{out}"
        );
    }
}
