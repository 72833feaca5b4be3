//! The statsd_exporter mapping file: YAML in, validated rules out.
//!
//! Every key statsd_exporter accepts is accepted here, unknown keys are errors
//! (statsd_exporter's strict mode), and the deprecated keys of older releases
//! (`timer_type`, `buckets`, `quantiles`) are accepted with a warning. Errors carry
//! the file, the line and the reason.

use super::template::GlobTemplate;
use super::{ObserverType, DEFAULT_BUCKETS};
use crate::model::{NativeOptions, SummaryOptions};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A mapping file that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the file came from (a path, or `airflow` for the built-in pack).
    pub source: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}: line {l}: {}", self.source, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawDuration {
    Nanos(i64),
    Text(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantile {
    quantile: f64,
    #[serde(default)]
    error: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSummaryOptions {
    #[serde(default)]
    quantiles: Vec<RawQuantile>,
    max_age: Option<RawDuration>,
    age_buckets: Option<u32>,
    /// Accepted for compatibility; promstatsd's summaries have no stream buffer.
    #[serde(rename = "buf_cap")]
    _buf_cap: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistogramOptions {
    #[serde(default)]
    buckets: Vec<f64>,
    native_histogram_bucket_factor: Option<f64>,
    native_histogram_max_buckets: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    observer_type: Option<String>,
    timer_type: Option<String>,
    match_type: Option<String>,
    #[serde(default)]
    glob_disable_ordering: bool,
    ttl: Option<RawDuration>,
    summary_options: Option<RawSummaryOptions>,
    histogram_options: Option<RawHistogramOptions>,
    buckets: Option<Vec<f64>>,
    quantiles: Option<Vec<RawQuantile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    #[serde(rename = "match")]
    pattern: String,
    name: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    honor_labels: bool,
    /// promstatsd's own key: substrings replaced in the rule's own label
    /// values (not in tags), e.g. `{"__": "."}`.
    #[serde(default)]
    label_value_replace: BTreeMap<String, String>,
    help: Option<String>,
    action: Option<String>,
    match_type: Option<String>,
    match_metric_type: Option<String>,
    observer_type: Option<String>,
    timer_type: Option<String>,
    summary_options: Option<RawSummaryOptions>,
    histogram_options: Option<RawHistogramOptions>,
    buckets: Option<Vec<f64>>,
    quantiles: Option<Vec<RawQuantile>>,
    ttl: Option<RawDuration>,
    scale: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    mappings: Vec<RawMapping>,
}

/// Which samples a rule applies to (`match_metric_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchMetricType {
    /// `c` samples.
    Counter,
    /// `g` (and `s`) samples.
    Gauge,
    /// `ms`, `h`, `d` samples.
    Observer,
}

/// How a rule's `match` is interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchType {
    /// `*` is one dot-separated component.
    Glob,
    /// A regular expression, unanchored (as statsd_exporter).
    Regex,
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Map the sample to the rule's name and labels.
    Map,
    /// Drop the sample.
    Drop,
}

/// The name and label templates of a rule.
#[derive(Clone, Debug)]
pub enum Templates {
    /// Glob templates, parsed once.
    Glob {
        /// The name template.
        name: GlobTemplate,
        /// Label templates.
        labels: Vec<(String, GlobTemplate)>,
    },
    /// Regex templates, expanded with the regex's captures.
    Regex {
        /// The compiled match.
        regex: regex::Regex,
        /// The name template.
        name: String,
        /// Label templates.
        labels: Vec<(String, String)>,
    },
}

/// One validated rule.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Position in the file (0-based).
    pub index: usize,
    /// 1-based line of the rule's `match:` key in the file, when found (a
    /// block-style mapping; flow-style YAML has none).
    pub line: Option<usize>,
    /// The `match` text.
    pub pattern: String,
    /// Glob or regex.
    pub match_type: MatchType,
    /// Name and labels to produce.
    pub templates: Templates,
    /// HELP text, if the rule sets one.
    pub help: Option<Arc<str>>,
    /// Map or drop.
    pub action: Action,
    /// Type filter.
    pub metric_type: Option<MatchMetricType>,
    /// Observer type (defaults applied).
    pub observer: ObserverType,
    /// Histogram buckets (defaults applied).
    pub buckets: Arc<[f64]>,
    /// Native histogram buckets (defaults applied; `None`: classic only).
    pub native: Option<NativeOptions>,
    /// Summary options (defaults applied).
    pub summary: Arc<SummaryOptions>,
    /// Time to live in seconds; 0 = never expires (defaults applied).
    pub ttl_secs: u64,
    /// Tag labels win over the rule's labels.
    pub honor_labels: bool,
    /// `(from, to)`: replaced, in this order, in the rule's own label values.
    pub label_value_replace: Vec<(String, String)>,
    /// Multiply values by this.
    pub scale: Option<f64>,
}

/// Resolved `defaults` section.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    /// Observer type for unmapped metrics and rules without one.
    pub observer: ObserverType,
    /// Histogram buckets.
    pub buckets: Arc<[f64]>,
    /// Native histogram buckets (`None`: classic only).
    pub native: Option<NativeOptions>,
    /// Summary options.
    pub summary: Arc<SummaryOptions>,
    /// TTL in seconds, 0 = never.
    pub ttl_secs: u64,
    /// `glob_disable_ordering`.
    pub glob_disable_ordering: bool,
    /// Default `match_type`.
    pub match_type: MatchType,
}

impl Default for Defaults {
    fn default() -> Self {
        Self {
            observer: ObserverType::Summary,
            buckets: Arc::from(&DEFAULT_BUCKETS[..]),
            native: Some(NativeOptions::DEFAULT),
            summary: Arc::new(SummaryOptions::default()),
            ttl_secs: 0,
            glob_disable_ordering: false,
            match_type: MatchType::Glob,
        }
    }
}

/// A parsed and validated mapping file.
#[derive(Clone, Debug)]
pub struct MappingFile {
    /// Resolved defaults.
    pub defaults: Defaults,
    /// Rules in file order.
    pub rules: Vec<Rule>,
    /// Deprecation and other warnings to log.
    pub warnings: Vec<String>,
}

/// Parse a Go duration (`300ms`, `1.5h`, `1h30m`, `0`); a YAML integer is nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if s == "0" {
        return Some(0.0);
    }
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_end];
        if num.is_empty() || num == "." {
            return None;
        }
        let v: f64 = num.parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += v * unit;
    }
    Some(if neg { -total } else { total })
}

#[derive(Clone, Copy)]
struct Ctx<'a> {
    source: &'a str,
    /// 1-based line of each block-style `match:` key, in file order.
    match_lines: &'a [usize],
}

/// The 1-based lines of the `match:` keys (block style), in file order: the
/// `index`-th rule's is the `index`-th, found once for the whole file.
fn match_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.starts_with("match:")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

impl Ctx<'_> {
    fn err(&self, line: Option<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            source: self.source.to_owned(),
            line,
            message: message.into(),
        }
    }

    /// The line of the `index`-th `match:` key (block style), to point errors at.
    fn mapping_line(&self, index: usize) -> Option<usize> {
        self.match_lines.get(index).copied()
    }
}

fn duration_secs(
    ctx: &Ctx<'_>,
    line: Option<usize>,
    what: &str,
    d: &RawDuration,
) -> Result<u64, ConfigError> {
    let secs = match d {
        RawDuration::Nanos(n) => *n as f64 / 1e9,
        RawDuration::Text(t) => parse_go_duration(t).ok_or_else(|| {
            ctx.err(
                line,
                format!("{what}: invalid duration {t:?} (use Go syntax such as 30s, 5m, 1h30m)"),
            )
        })?,
    };
    if !(0.0..=1e12).contains(&secs) {
        return Err(ctx.err(line, format!("{what}: the duration must not be negative")));
    }
    Ok(secs.ceil() as u64)
}

fn observer_type(
    ctx: &Ctx<'_>,
    line: Option<usize>,
    v: &str,
) -> Result<Option<ObserverType>, ConfigError> {
    match v {
        "" => Ok(None),
        "summary" => Ok(Some(ObserverType::Summary)),
        "histogram" => Ok(Some(ObserverType::Histogram)),
        other => Err(ctx.err(
            line,
            format!("invalid observer type {other:?} (use histogram or summary)"),
        )),
    }
}

fn match_type(
    ctx: &Ctx<'_>,
    line: Option<usize>,
    v: &str,
) -> Result<Option<MatchType>, ConfigError> {
    match v {
        "" => Ok(None),
        "glob" => Ok(Some(MatchType::Glob)),
        // statsd_exporter compiles every non-glob type, `fsm` included, as a regex.
        "regex" | "fsm" => Ok(Some(MatchType::Regex)),
        other => Err(ctx.err(
            line,
            format!("invalid match type {other:?} (use glob or regex)"),
        )),
    }
}

fn check_buckets(ctx: &Ctx<'_>, line: Option<usize>, b: &[f64]) -> Result<(), ConfigError> {
    if b.iter().any(|x| !x.is_finite()) {
        return Err(ctx.err(
            line,
            "histogram buckets must be finite numbers (+Inf is added for you)",
        ));
    }
    if b.windows(2).any(|w| w[0] >= w[1]) {
        return Err(ctx.err(line, "histogram buckets must be in increasing order"));
    }
    if b.len() > crate::model::MAX_HISTOGRAM_BUCKETS {
        return Err(ctx.err(
            line,
            format!(
                "too many histogram buckets: {} (at most {})",
                b.len(),
                crate::model::MAX_HISTOGRAM_BUCKETS
            ),
        ));
    }
    Ok(())
}

fn quantiles(
    ctx: &Ctx<'_>,
    line: Option<usize>,
    q: &[RawQuantile],
) -> Result<Vec<f64>, ConfigError> {
    for x in q {
        if !(0.0..=1.0).contains(&x.quantile) {
            return Err(ctx.err(line, format!("quantile {} is outside [0, 1]", x.quantile)));
        }
        if !(0.0..=1.0).contains(&x.error) {
            return Err(ctx.err(
                line,
                format!("quantile error {} is outside [0, 1]", x.error),
            ));
        }
    }
    Ok(q.iter().map(|x| x.quantile).collect())
}

fn summary_options(
    ctx: &Ctx<'_>,
    line: Option<usize>,
    raw: &RawSummaryOptions,
    base: &SummaryOptions,
) -> Result<SummaryOptions, ConfigError> {
    let mut s = base.clone();
    if !raw.quantiles.is_empty() {
        s.quantiles = quantiles(ctx, line, &raw.quantiles)?;
    }
    if let Some(d) = &raw.max_age {
        let secs = duration_secs(ctx, line, "summary_options.max_age", d)?;
        if secs > 0 {
            s.max_age_secs = secs;
        }
    }
    if let Some(n) = raw.age_buckets {
        if n > 0 {
            s.age_buckets = n.min(1024);
        }
    }
    Ok(s)
}

fn valid_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && !s.starts_with("__")
}

/// statsd_exporter's check on a name template: letters, digits, `_` and `$n`/`${n}`
/// references, not starting with a digit.
fn valid_name_template(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut first = true;
    while i < b.len() {
        if b[i] == b'$' {
            let mut j = i + 1;
            let brace = b.get(j) == Some(&b'{');
            if brace {
                j += 1;
            }
            let start = j;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j == start {
                return false;
            }
            if brace {
                if b.get(j) != Some(&b'}') {
                    return false;
                }
                j += 1;
            }
            i = j;
        } else {
            let c = b[i];
            let ok = c.is_ascii_alphabetic() || c == b'_' || (!first && c.is_ascii_digit());
            if !ok {
                return false;
            }
            i += 1;
        }
        first = false;
    }
    !b.is_empty()
}

/// statsd_exporter's check on a glob: dot-separated components, each `*` or
/// `[A-Za-z0-9_-]+` (the first not starting with a digit or `-`, later ones not with `-`).
fn valid_glob(s: &str) -> bool {
    s.split('.').enumerate().all(|(i, c)| {
        if c == "*" {
            return true;
        }
        let b = c.as_bytes();
        let Some(&first) = b.first() else {
            return false;
        };
        let first_ok = if i == 0 {
            first.is_ascii_alphabetic() || first == b'_'
        } else {
            first.is_ascii_alphanumeric() || first == b'_'
        };
        first_ok
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
    })
}

/// Parse and validate a mapping file. `base` supplies the defaults the file does
/// not set (the command line's observer type, statsd_exporter's buckets and
/// quantiles).
pub fn parse(source: &str, text: &str, base: &Defaults) -> Result<MappingFile, ConfigError> {
    let lines = match_lines(text);
    let ctx = Ctx {
        source,
        match_lines: &lines,
    };
    let raw: RawFile = if text.trim().is_empty() {
        RawFile::default()
    } else {
        serde_saphyr::from_str(text).map_err(|e| {
            let msg = e.to_string();
            let first = msg.lines().next().unwrap_or("invalid YAML").trim();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // serde-saphyr reports "line N column M: reason"; keep it whole.
            ctx.err(None, first.to_owned())
        })?
    };
    let mut warnings = Vec::new();
    let defaults = parse_defaults(&ctx, &raw.defaults, base, &mut warnings)?;
    let rules = raw
        .mappings
        .iter()
        .enumerate()
        .map(|(index, m)| parse_rule(&ctx, index, m, &defaults, &mut warnings))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(MappingFile {
        defaults,
        rules,
        warnings,
    })
}

/// The file's `defaults` section applied over `base`.
fn parse_defaults(
    ctx: &Ctx<'_>,
    d: &RawDefaults,
    base: &Defaults,
    warnings: &mut Vec<String>,
) -> Result<Defaults, ConfigError> {
    let ctx = *ctx;
    let mut defaults = base.clone();
    let observer_text = match (&d.observer_type, &d.timer_type) {
        (Some(o), _) if !o.is_empty() => Some(o.as_str()),
        (_, Some(t)) => {
            warnings
                .push("defaults.timer_type is deprecated; use defaults.observer_type".to_owned());
            Some(t.as_str())
        }
        _ => None,
    };
    if let Some(o) = observer_text
        .map(|o| observer_type(&ctx, None, o))
        .transpose()?
        .flatten()
    {
        defaults.observer = o;
    }
    if let Some(m) = d
        .match_type
        .as_deref()
        .map(|m| match_type(&ctx, None, m))
        .transpose()?
        .flatten()
    {
        defaults.match_type = m;
    }
    defaults.glob_disable_ordering = d.glob_disable_ordering;
    if let Some(t) = &d.ttl {
        defaults.ttl_secs = duration_secs(&ctx, None, "defaults.ttl", t)?;
    }
    let mut buckets: Option<Vec<f64>> = None;
    if let Some(h) = &d.histogram_options {
        defaults.native = native_options(&ctx, None, h, defaults.native)?;
        if !h.buckets.is_empty() {
            buckets = Some(h.buckets.clone());
        }
    }
    // As statsd_exporter: the deprecated key is used only when the new one
    // has no buckets; next to it, it is ignored (with a warning).
    match (&d.buckets, buckets.is_some()) {
        (Some(_), true) => warnings.push(
            "defaults.buckets is ignored: defaults.histogram_options.buckets is set".to_owned(),
        ),
        (Some(b), false) => {
            warnings.push(
                "defaults.buckets is deprecated; use defaults.histogram_options.buckets".to_owned(),
            );
            buckets = Some(b.clone());
        }
        (None, _) => {}
    }
    if let Some(b) = buckets {
        check_buckets(&ctx, None, &b)?;
        defaults.buckets = Arc::from(b);
    }
    let mut summary = (*defaults.summary).clone();
    if let Some(s) = &d.summary_options {
        summary = summary_options(&ctx, None, s, &summary)?;
    }
    // As statsd_exporter: the deprecated key is used only when
    // summary_options has no quantiles; next to them, it is ignored.
    let new_quantiles = d
        .summary_options
        .as_ref()
        .is_some_and(|s| !s.quantiles.is_empty());
    match &d.quantiles {
        Some(q) if !new_quantiles => {
            warnings.push(
                "defaults.quantiles is deprecated; use defaults.summary_options.quantiles"
                    .to_owned(),
            );
            summary.quantiles = quantiles(&ctx, None, q)?;
        }
        Some(_) => warnings.push(
            "defaults.quantiles is ignored: defaults.summary_options.quantiles is set".to_owned(),
        ),
        None => {}
    }
    defaults.summary = Arc::new(summary);
    Ok(defaults)
}

/// One entry of `mappings` (the `index`th, from 0), checked and compiled.
fn parse_rule(
    ctx: &Ctx<'_>,
    index: usize,
    m: &RawMapping,
    defaults: &Defaults,
    warnings: &mut Vec<String>,
) -> Result<Rule, ConfigError> {
    let ctx = *ctx;
    let line = ctx.mapping_line(index);
    let at = |msg: String| rule_error(&ctx, index, m, msg);
    let (action, name) = rule_action_and_name(&ctx, index, m)?;
    let mt = match m.match_type.as_deref() {
        Some(v) => match_type(&ctx, line, v).map_err(|e| at(e.message))?,
        None => None,
    }
    .unwrap_or(defaults.match_type);
    let metric_type = match m.match_metric_type.as_deref().unwrap_or("") {
        "" => None,
        "counter" => Some(MatchMetricType::Counter),
        "gauge" => Some(MatchMetricType::Gauge),
        "observer" | "timer" => Some(MatchMetricType::Observer),
        other => {
            return Err(at(format!(
                "invalid metric type {other:?} (use counter, gauge or observer)"
            )))
        }
    };
    let explicit_observer = rule_observer(&ctx, index, m, warnings)?;
    let observer = explicit_observer.unwrap_or(defaults.observer);

    let buckets = rule_buckets(
        &ctx,
        index,
        m,
        defaults,
        observer,
        explicit_observer.is_some(),
        warnings,
    )?;
    let native = match &m.histogram_options {
        Some(h) => native_options(&ctx, line, h, defaults.native).map_err(|e| at(e.message))?,
        None => defaults.native,
    };
    let summary = rule_summary(&ctx, index, m, defaults, warnings)?;
    let mut ttl_secs = match &m.ttl {
        Some(t) => duration_secs(&ctx, line, "ttl", t).map_err(|e| at(e.message))?,
        None => 0,
    };
    if ttl_secs == 0 {
        // As statsd_exporter: a rule cannot turn a default TTL off.
        ttl_secs = defaults.ttl_secs;
    }
    if let Some(s) = m.scale {
        if !s.is_finite() {
            return Err(at("scale must be a finite number".to_owned()));
        }
    }
    if m.label_value_replace.keys().any(String::is_empty) {
        return Err(at(
            "label_value_replace: a substring to replace cannot be empty".to_owned(),
        ));
    }
    let templates = rule_templates(&ctx, index, m, mt, &name)?;
    Ok(Rule {
        index,
        line,
        pattern: m.pattern.clone(),
        match_type: mt,
        templates,
        help: m.help.as_deref().map(Arc::from),
        action,
        metric_type,
        observer,
        buckets,
        native,
        summary,
        ttl_secs,
        honor_labels: m.honor_labels,
        label_value_replace: m
            .label_value_replace
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        scale: m.scale,
    })
}

/// A rule's action, and its name template (checked when it maps), with its
/// label keys checked.
fn rule_action_and_name(
    ctx: &Ctx<'_>,
    index: usize,
    m: &RawMapping,
) -> Result<(Action, String), ConfigError> {
    let at = |msg: String| rule_error(ctx, index, m, msg);
    let action = match m.action.as_deref().unwrap_or("") {
        "" | "map" => Action::Map,
        "drop" => Action::Drop,
        other => {
            return Err(at(format!(
                "invalid action type {other:?} (use map or drop)"
            )))
        }
    };
    for k in m.labels.keys() {
        if !valid_label_name(k) {
            return Err(at(format!("invalid label key: {k}")));
        }
    }
    let name = m.name.clone().unwrap_or_default();
    if name.is_empty() && action == Action::Map {
        return Err(at("metric mapping didn't set a metric name".to_owned()));
    }
    if action == Action::Map && !valid_name_template(&name) {
        return Err(at(format!(
            "metric name {name:?} is not valid: use letters, digits, _ and $1 or ${{1}} captures, not starting with a digit"
        )));
    }
    Ok((action, name))
}

/// The observer type a rule names itself (`observer_type`, or the deprecated
/// `timer_type`), if any.
fn rule_observer(
    ctx: &Ctx<'_>,
    index: usize,
    m: &RawMapping,
    warnings: &mut Vec<String>,
) -> Result<Option<ObserverType>, ConfigError> {
    let line = ctx.mapping_line(index);
    let at = |msg: String| rule_error(ctx, index, m, msg);
    let observer_text = match (&m.observer_type, &m.timer_type) {
        (Some(o), _) if !o.is_empty() => Some(o.as_str()),
        (_, Some(t)) => {
            warnings.push(format!(
                "mapping {}: timer_type is deprecated; use observer_type",
                index + 1
            ));
            Some(t.as_str())
        }
        _ => None,
    };
    match observer_text {
        Some(o) => observer_type(ctx, line, o).map_err(|e| at(e.message)),
        None => Ok(None),
    }
}

/// `mapping {n} (match ...): msg` at the rule's line.
fn rule_error(ctx: &Ctx<'_>, index: usize, m: &RawMapping, msg: String) -> ConfigError {
    ctx.err(
        ctx.mapping_line(index),
        format!("mapping {} (match {:?}): {msg}", index + 1, m.pattern),
    )
}

/// A rule's histogram buckets (its own, or the defaults'), refusing summary
/// options beside a histogram observer and histogram options beside an
/// explicit summary observer.
fn rule_buckets(
    ctx: &Ctx<'_>,
    index: usize,
    m: &RawMapping,
    defaults: &Defaults,
    observer: ObserverType,
    explicit_observer: bool,
    warnings: &mut Vec<String>,
) -> Result<Arc<[f64]>, ConfigError> {
    let line = ctx.mapping_line(index);
    let at = |msg: String| rule_error(ctx, index, m, msg);
    let mut rule_buckets: Option<Vec<f64>> = None;
    if let Some(h) = &m.histogram_options {
        if !h.buckets.is_empty() {
            rule_buckets = Some(h.buckets.clone());
        }
    }
    if let Some(b) = &m.buckets {
        if rule_buckets.is_some() {
            return Err(at(
                "cannot use buckets in both the top level and histogram_options".to_owned(),
            ));
        }
        warnings.push(format!(
            "mapping {}: the top level buckets are deprecated; use histogram_options.buckets",
            index + 1
        ));
        rule_buckets = Some(b.clone());
    }
    let has_summary_opts = m.summary_options.is_some() || m.quantiles.is_some();
    let has_histogram_opts = m.histogram_options.is_some() || m.buckets.is_some();
    if observer == ObserverType::Histogram && has_summary_opts {
        return Err(at(
            "cannot use histogram observer and summary options at the same time".to_owned(),
        ));
    }
    if observer == ObserverType::Summary && has_histogram_opts && explicit_observer {
        return Err(at(
            "cannot use summary observer and histogram options at the same time".to_owned(),
        ));
    }
    Ok(match rule_buckets {
        Some(b) => {
            check_buckets(ctx, line, &b).map_err(|e| at(e.message))?;
            Arc::from(b)
        }
        None => Arc::clone(&defaults.buckets),
    })
}

/// Native buckets from `histogram_options`, as statsd_exporter reads them: a
/// factor or bucket limit of 0 (or none) keeps `base`'s (the defaults'), a
/// factor of at most 1 turns native buckets off, any other factor picks the
/// schema ([`NativeOptions::schema_for`]).
fn native_options(
    ctx: &Ctx<'_>,
    line: Option<usize>,
    h: &RawHistogramOptions,
    base: Option<NativeOptions>,
) -> Result<Option<NativeOptions>, ConfigError> {
    let max_buckets = match h.native_histogram_max_buckets {
        Some(n) if n > 0 => n,
        _ => base.map_or(NativeOptions::DEFAULT.max_buckets, |b| b.max_buckets),
    };
    match h.native_histogram_bucket_factor {
        None | Some(0.0) => Ok(base.map(|b| NativeOptions { max_buckets, ..b })),
        Some(f) if !f.is_finite() || f < 0.0 => Err(ctx.err(
            line,
            "native_histogram_bucket_factor must be a finite number (at most 1 turns native buckets off)",
        )),
        Some(f) => Ok(NativeOptions::schema_for(f).map(|schema| NativeOptions {
            schema,
            max_buckets,
        })),
    }
}

/// A rule's summary options: the defaults' unless it sets its own.
fn rule_summary(
    ctx: &Ctx<'_>,
    index: usize,
    m: &RawMapping,
    defaults: &Defaults,
    warnings: &mut Vec<String>,
) -> Result<Arc<SummaryOptions>, ConfigError> {
    let line = ctx.mapping_line(index);
    let at = |msg: String| rule_error(ctx, index, m, msg);
    let mut summary = (*defaults.summary).clone();
    if let Some(s) = &m.summary_options {
        summary = summary_options(ctx, line, s, &summary).map_err(|e| at(e.message))?;
    }
    if let Some(q) = &m.quantiles {
        if m.summary_options
            .as_ref()
            .is_some_and(|s| !s.quantiles.is_empty())
        {
            return Err(at(
                "cannot use quantiles in both the top level and summary_options".to_owned(),
            ));
        }
        warnings.push(format!(
            "mapping {}: the top level quantiles are deprecated; use summary_options.quantiles",
            index + 1
        ));
        summary.quantiles = quantiles(ctx, line, q).map_err(|e| at(e.message))?;
    }
    Ok(if summary == *defaults.summary {
        Arc::clone(&defaults.summary)
    } else {
        Arc::new(summary)
    })
}

/// A rule's pattern compiled with its name and label templates.
fn rule_templates(
    ctx: &Ctx<'_>,
    index: usize,
    m: &RawMapping,
    mt: MatchType,
    name: &str,
) -> Result<Templates, ConfigError> {
    let at = |msg: String| rule_error(ctx, index, m, msg);
    Ok(match mt {
        MatchType::Glob => {
            if !valid_glob(&m.pattern) {
                return Err(at(format!(
                    "invalid match: {} (a glob is dot-separated components of letters, digits, _ and -, or a whole *)",
                    m.pattern
                )));
            }
            let captures = m.pattern.split('.').filter(|c| *c == "*").count();
            Templates::Glob {
                name: GlobTemplate::parse(name, captures),
                labels: m
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), GlobTemplate::parse(v, captures)))
                    .collect(),
            }
        }
        MatchType::Regex => {
            let regex = regex::Regex::new(&m.pattern).map_err(|e| {
                at(format!(
                    "invalid regex: {}",
                    e.to_string().replace('\n', " ")
                ))
            })?;
            Templates::Regex {
                regex,
                name: name.to_owned(),
                labels: m
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let cases: &[(&str, Option<f64>)] = &[
            ("0", Some(0.0)),
            ("30s", Some(30.0)),
            ("1m2s", Some(62.0)),
            ("1h30m", Some(5400.0)),
            ("1.5h", Some(5400.0)),
            ("300ms", Some(0.3)),
            ("250us", Some(250.0 * 1e-6)),
            ("1d", None),
            ("5", None),
            ("", None),
            ("s", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_go_duration(s), *want, "{s:?}");
        }
    }

    #[test]
    fn native_options_as_statsd_exporter_reads_them() {
        let n = |schema, max_buckets| {
            Some(NativeOptions {
                schema,
                max_buckets,
            })
        };
        let rule = |opts: &str| {
            format!("mappings:\n- match: a\n  name: a\n  histogram_options: {{{opts}}}\n")
        };
        let defaults = |opts: &str| {
            format!(
                "defaults:\n  histogram_options: {{{opts}}}\nmappings:\n- match: a\n  name: a\n"
            )
        };
        /// (file, the defaults' native options, the rule's)
        type Case = (String, Option<NativeOptions>, Option<NativeOptions>);
        let cases: Vec<Case> = vec![
            ("mappings: []".into(), n(3, 256), None),
            (rule("buckets: [1]"), n(3, 256), n(3, 256)),
            (
                rule("native_histogram_bucket_factor: 1.5"),
                n(3, 256),
                n(1, 256),
            ),
            (
                rule("native_histogram_bucket_factor: 0"),
                n(3, 256),
                n(3, 256),
            ),
            (rule("native_histogram_bucket_factor: 1"), n(3, 256), None),
            (
                rule("native_histogram_max_buckets: 160"),
                n(3, 256),
                n(3, 160),
            ),
            (
                rule("native_histogram_max_buckets: 0"),
                n(3, 256),
                n(3, 256),
            ),
            (
                defaults("native_histogram_bucket_factor: 1.005, native_histogram_max_buckets: 50"),
                n(8, 50),
                n(8, 50),
            ),
            (defaults("native_histogram_bucket_factor: 0.5"), None, None),
        ];
        for (text, want_defaults, want_rule) in cases {
            let file = match parse("t", &text, &Defaults::default()) {
                Ok(f) => f,
                Err(e) => panic!("{text}: {e}"),
            };
            assert_eq!(file.defaults.native, want_defaults, "{text}");
            assert_eq!(
                file.rules.first().and_then(|r| r.native),
                want_rule,
                "{text}"
            );
        }
        let bad = rule("native_histogram_bucket_factor: -2");
        assert!(parse("t", &bad, &Defaults::default()).is_err());
    }

    #[test]
    fn rules_know_the_line_of_their_match_key() {
        let helm = include_str!("../../tests/data/airflow-helm-statsd-mappings.yml");
        /// (what, file text, [(rule index, line)])
        type Case<'a> = (&'a str, &'a str, &'a [(usize, usize)]);
        let cases: &[Case<'_>] = &[
            ("helm", helm, &[(0, 26), (1, 31), (5, 55), (20, 137)]),
            (
                "airflow",
                super::super::AIRFLOW_PACK,
                &[(0, 18), (7, 64), (57, 262)],
            ),
            (
                "inline",
                "# c\nmappings:\n- match: a.*\n  name: a\n\n-   match: b\n    name: b\n",
                &[(0, 3), (1, 6)],
            ),
        ];
        for (what, text, want) in cases {
            let file = parse(what, text, &Defaults::default()).unwrap();
            for &(index, line) in *want {
                assert_eq!(file.rules[index].index, index, "{what}");
                assert_eq!(file.rules[index].line, Some(line), "{what} rule {index}");
            }
        }
    }

    #[test]
    fn flow_style_rules_have_no_line() {
        let file = parse("f", "mappings: [{match: a, name: a}]", &Defaults::default()).unwrap();
        assert_eq!(file.rules[0].line, None);
    }

    #[test]
    fn bucket_count_limited() {
        let file = |n: usize| {
            let bounds: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            format!(
                "defaults:\n  observer_type: histogram\n  histogram_options:\n    buckets: [{}]\n",
                bounds.join(",")
            )
        };
        let max = crate::model::MAX_HISTOGRAM_BUCKETS;
        assert!(parse("f.yml", &file(max), &Defaults::default()).is_ok());
        let err = parse("f.yml", &file(max + 1), &Defaults::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("too many histogram buckets: 65534 (at most 65533)"),
            "{err}"
        );
    }

    #[test]
    fn name_and_glob_checks() {
        for ok in ["abc", "a_$1", "${1}_x", "$1", "_x9"] {
            assert!(valid_name_template(ok), "{ok}");
        }
        for bad in ["0foo", "foo-bar", "a:b", "${host}", "$", "a$", ""] {
            assert!(!valid_name_template(bad), "{bad}");
        }
        for ok in [
            "a.b",
            "*",
            "a.*.c",
            "airflow.dagrun.dependency-check.*",
            "a.1b",
            "a--b.c",
        ] {
            assert!(valid_glob(ok), "{ok}");
        }
        for bad in ["a..b", "1a.b", "a.b*", "prefix_*", "a.-b", "", "a b"] {
            assert!(!valid_glob(bad), "{bad}");
        }
    }
}
