//! Parser tests: a named table of behaviours, and a property test against a slow,
//! allocating oracle written straight from statsd_exporter's algorithm.

use super::*;
use proptest::prelude::*;

/// A compact, comparable rendering of one parser result.
fn show(r: &Result<Sample<'_>, ParseError>) -> String {
    let s = match r {
        Err(e) => return format!("err:{}", e.reason()),
        Ok(s) => s,
    };
    let t = match s.metric_type {
        MetricType::Counter => "c",
        MetricType::Gauge => "g",
        MetricType::Timer => "ms",
        MetricType::Histogram => "h",
        MetricType::Distribution => "d",
        MetricType::Set => "s",
    };
    let v = match s.value {
        Value::Number(n) => format!("{n}"),
        Value::Member(m) => format!("'{}'", String::from_utf8_lossy(m)),
    };
    let mut out = format!(
        "{t} {}{}={v}",
        String::from_utf8_lossy(s.name_head),
        String::from_utf8_lossy(s.name_tail)
    );
    if s.relative {
        out.push_str(" rel");
    }
    if s.sample_rate != 1.0 {
        out.push_str(&format!(" @{}", s.sample_rate));
    }
    if s.name_tag_style != NameTagStyle::None {
        out.push_str(&format!(
            " {:?}[{}]",
            s.name_tag_style,
            String::from_utf8_lossy(s.name_tags)
        ));
    }
    if !s.dog_tags.is_empty() {
        out.push_str(&format!(" #[{}]", String::from_utf8_lossy(s.dog_tags)));
    }
    if !s.container_id.is_empty() {
        out.push_str(&format!(
            " cid[{}]",
            String::from_utf8_lossy(s.container_id)
        ));
    }
    out
}

fn parse_all(line: &[u8]) -> Vec<String> {
    parse_line(line, ParseOptions::default())
        .map(|r| show(&r))
        .collect()
}

/// (case name, line, expected results)
const TABLE: &[(&str, &str, &[&str])] = &[
    // Control bytes in the name (a DogStatsD length prefix read as text).
    (
        "name_with_nul",
        "\x1d\x00\x00\x00a:1|c",
        &["err:malformed_line"],
    ),
    ("name_with_tab", "a\tb:1|c", &["err:malformed_line"]),
    ("name_with_del", "a\x7fb:1|c", &["err:malformed_line"]),
    (
        "name_with_unit_separator",
        "a\x1fb:1|c",
        &["err:malformed_line"],
    ),
    (
        "control_byte_in_a_tag_value_is_not_the_name",
        "a:1|c|#k:v\x01",
        &["c a=1 #[k:v\u{1}]"],
    ),
    ("space_is_not_a_control_byte", "a b:1|c", &["c a b=1"]),
    // Types and values.
    ("counter", "a.b:1|c", &["c a.b=1"]),
    ("counter_float", "a:1.5|c", &["c a=1.5"]),
    ("counter_zero", "a:0|c", &["c a=0"]),
    ("gauge_absolute", "g:42|g", &["g g=42"]),
    ("gauge_plus_is_relative", "g:+3|g", &["g g=3 rel"]),
    ("gauge_minus_is_relative", "g:-3|g", &["g g=-3 rel"]),
    ("timer", "t:320|ms", &["ms t=320"]),
    ("histogram", "h:0.25|h", &["h h=0.25"]),
    ("distribution", "d:7|d", &["d d=7"]),
    ("set_member", "s:user42|s", &["s s='user42'"]),
    ("exponent_value", "a:1e3|g", &["g a=1000"]),
    ("gauge_nan_kept", "a:NaN|g", &["g a=NaN"]),
    ("gauge_inf_kept", "a:+Inf|g", &["g a=inf rel"]),
    ("counter_nan_refused", "a:NaN|c", &["err:malformed_value"]),
    ("timer_inf_refused", "a:Inf|ms", &["err:malformed_value"]),
    ("overflow_refused", "a:1e309|g", &["err:malformed_value"]),
    ("negative_zero", "a:-0|g", &["g a=-0 rel"]),
    ("bad_value", "a:x|c", &["err:malformed_value"]),
    ("empty_value", "a:|c", &["err:malformed_value"]),
    ("unknown_type", "a:1|x", &["err:illegal_event"]),
    ("empty_type", "a:1|", &["err:illegal_event"]),
    // Sample rates.
    ("rate", "a:1|c|@0.1", &["c a=1 @0.1"]),
    ("rate_zero_means_one", "a:1|c|@0", &["c a=1"]),
    (
        "rate_gauge_parsed_ignored_later",
        "a:1|g|@0.5",
        &["g a=1 @0.5"],
    ),
    ("rate_above_one", "a:1|c|@2", &["err:invalid_sample_factor"]),
    (
        "rate_negative",
        "a:1|c|@-0.5",
        &["err:invalid_sample_factor"],
    ),
    (
        "rate_not_a_number",
        "a:1|c|@x",
        &["err:invalid_sample_factor"],
    ),
    ("unknown_section", "a:1|c|x", &["err:invalid_sample_factor"]),
    ("empty_section", "a:1|c||@0.5", &["err:malformed_component"]),
    (
        "too_many_sections",
        "a:1|c|@1|@1|@1|@1|@1|@1|@1",
        &["err:malformed_component"],
    ),
    ("eight_parts_ok", "a:1|c|@1|@1|@1|@1|@1|@1", &["c a=1"]),
    // Multi-sample and extended aggregation.
    ("multi_sample", "a:1|c:2|c", &["c a=1", "c a=2"]),
    ("multi_sample_mixed_types", "a:1|c:2|g", &["c a=1", "g a=2"]),
    (
        "multi_sample_one_bad",
        "a:1|c:x|c:3|c",
        &["c a=1", "err:malformed_value", "c a=3"],
    ),
    (
        "multi_sample_trailing_colon",
        "a:1|c:",
        &["c a=1", "err:malformed_component"],
    ),
    (
        "extended_aggregation",
        "t:1:2:3|ms|@0.5",
        &["ms t=1 @0.5", "ms t=2 @0.5", "ms t=3 @0.5"],
    ),
    (
        "extended_aggregation_counter_refused",
        "a:1:2|c",
        &["err:invalid_extended_aggregate_type"],
    ),
    (
        "dogstatsd_disables_multi",
        "a:1|c|#k:v:2|c",
        &["err:malformed_container_id"],
    ),
    // Line-level errors.
    ("no_colon", "abc", &["err:malformed_line"]),
    ("empty_name", ":1|c", &["err:malformed_line"]),
    ("no_pipe", "a:1", &["err:not_enough_parts_after_colon"]),
    ("invalid_utf8", "a\u{fffd}:1|c", &["c a\u{fffd}=1"]),
    // Tag styles.
    (
        "dogstatsd_tags",
        "a:1|c|#k:v,k2:v2",
        &["c a=1 #[k:v,k2:v2]"],
    ),
    (
        "dogstatsd_with_rate",
        "a:1|c|@0.5|#k:v",
        &["c a=1 @0.5 #[k:v]"],
    ),
    (
        "dogstatsd_tags_before_rate",
        "a:1|ms|#k:v|@0.5",
        &["ms a=1 @0.5 #[k:v]"],
    ),
    (
        "dogstatsd_two_tag_sections",
        "a:1|c|#k:v|#x:y",
        &["err:malformed_component"],
    ),
    (
        "dogstatsd_container_id",
        "a:1|c|#k:v|c:abc123",
        &["c a=1 #[k:v] cid[abc123]"],
    ),
    (
        "dogstatsd_bad_container_id",
        "a:1|c|cx",
        &["err:malformed_container_id"],
    ),
    ("dogstatsd_timestamp", "a:1|c|T1656581400", &["c a=1"]),
    (
        "dogstatsd_bad_timestamp",
        "a:1|c|Tx",
        &["err:malformed_timestamp"],
    ),
    (
        "influx_tags",
        "a.b,k=v,k2=v2:1|c",
        &["c a.b=1 Influx[k=v,k2=v2]"],
    ),
    (
        "librato_tags",
        "a.b#k=v,k2=v2:1|c",
        &["c a.b=1 Librato[k=v,k2=v2]"],
    ),
    (
        "signalfx_tags",
        "a.b[k=v,k2=v2]:1|c",
        &["c a.b=1 SignalFx[k=v,k2=v2]"],
    ),
    (
        "signalfx_tags_mid_name",
        "a[k=v].b:1|c",
        &["c a.b=1 SignalFx[k=v]"],
    ),
    (
        "signalfx_unbalanced",
        "a[k=v:1|c",
        &["c a[k=v=1 SignalFxUnbalanced[]"],
    ),
    (
        "signalfx_reversed",
        "a]k=v[:1|c",
        &["c a]k=v[=1 SignalFxUnbalanced[]"],
    ),
    (
        "mixed_styles_refused",
        "a,k=v:1|c|#x:y",
        &["err:mixed_tagging_styles"],
    ),
    (
        "mixed_styles_with_invalid_name_tag_ok",
        "a,k:1|c|#x:y",
        &["c a=1 Influx[k] #[x:y]"],
    ),
    ("name_empty_after_tags", ",k=v:1|c", &["err:malformed_line"]),
];

#[test]
fn table() {
    let mut failures = Vec::new();
    for (name, line, want) in TABLE {
        let got = parse_all(line.as_bytes());
        if got != *want {
            failures.push(format!(
                "{name}: {line:?}\n   got  {got:?}\n   want {want:?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn over_long_lines_are_refused() {
    let opts = ParseOptions {
        max_line_length: 8,
        ..ParseOptions::default()
    };
    let got: Vec<String> = parse_line(b"abcd:1|c", opts).map(|r| show(&r)).collect();
    assert_eq!(got, ["c abcd=1"]);
    let got: Vec<String> = parse_line(b"abcde:1|c", opts).map(|r| show(&r)).collect();
    assert_eq!(got, ["err:line_too_long"]);
}

#[test]
fn invalid_utf8_is_a_malformed_line() {
    assert_eq!(parse_all(b"a\xff:1|c"), ["err:malformed_line"]);
    assert_eq!(parse_all(b"a:1|c|#k:\xc3"), ["err:malformed_line"]);
}

#[test]
fn tag_styles_can_be_turned_off() {
    let off = ParseOptions {
        dogstatsd: false,
        influxdb: false,
        librato: false,
        signalfx: false,
        ..ParseOptions::default()
    };
    let got: Vec<String> = parse_line(b"a,k=v#x[y]:1|c|#t:u", off)
        .map(|r| show(&r))
        .collect();
    // The `|#` section is still recognised and skipped: no tags from it.
    assert_eq!(got, ["c a,k=v#x[y]=1"]);
}

#[test]
fn lines_split_on_newline_and_strip_cr() {
    let got: Vec<&[u8]> = lines(b"a:1|c\r\n\nb:2|c\n\r\nc:3|c").collect();
    assert_eq!(got, [&b"a:1|c"[..], b"b:2|c", b"c:3|c"]);
    assert_eq!(lines(b"").count(), 0);
    assert_eq!(lines(b"\n\n").count(), 0);
}

/// (line, decoded labels, tag errors)
type TagCase = (&'static str, &'static [(&'static str, &'static str)], u32);

#[test]
fn tags_decode_table() {
    let cases: &[TagCase] = &[
        ("a:1|c|#k:v,k2:v2", &[("k", "v"), ("k2", "v2")], 0),
        ("a:1|c|#k:v,k:w", &[("k", "w")], 0),
        ("a:1|c|#k.x-y:v", &[("k_x_y", "v")], 0),
        ("a:1|c|#k:a:b", &[("k", "a:b")], 0),
        ("a:1|c|#noval,:v,k:", &[], 3),
        ("a:1|c|#k:v,", &[("k", "v")], 0),
        ("a:1|c|##k:v", &[("k", "v")], 0),
        ("a:1|c|#__name__:x", &[], 1),
        ("a,k=v,bad,=x:1|c", &[("k", "v")], 2),
        ("a[k=v]:1|c", &[("k", "v")], 0),
        ("a[k=v:1|c", &[], 1),
        (
            "a:1|c|#k:v|c:cid",
            &[("container_id", "cid"), ("k", "v")],
            0,
        ),
        ("a:1|c|#k:\"q\\\\}", &[("k", "\"q\\\\}")], 0),
    ];
    for (line, want, errors) in cases {
        let s = parse_line(line.as_bytes(), ParseOptions::default())
            .next()
            .and_then(Result::ok);
        let Some(s) = s else {
            panic!("{line:?} did not parse")
        };
        let d = tags::decode(&s);
        let got: Vec<(&str, &str)> = d
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(got, *want, "labels of {line:?}");
        assert_eq!(d.errors, *errors, "tag errors of {line:?}");
    }
}

// ---------------------------------------------------------------------------
// The oracle: statsd_exporter's algorithm, transcribed naively over `String`s,
// with promstatsd's documented differences (rates, non-finite values, sets, one
// tag section).

fn oracle_number(s: &str) -> Option<f64> {
    let v: f64 = s.parse().ok()?;
    if v.is_infinite() && !s.to_ascii_lowercase().contains("inf") {
        return None;
    }
    Some(v)
}

fn oracle(line: &[u8], o: ParseOptions) -> Vec<String> {
    if line.len() > o.max_line_length {
        return vec!["err:line_too_long".into()];
    }
    let Ok(line) = std::str::from_utf8(line) else {
        return vec!["err:malformed_line".into()];
    };
    let elements: Vec<&str> = line.splitn(2, ':').collect();
    if elements.len() < 2
        || elements[0].is_empty()
        || elements[0].chars().any(|c| c.is_ascii_control())
    {
        return vec!["err:malformed_line".into()];
    }
    let (name0, rest) = (elements[0], elements[1]);
    // Name tags.
    let mut style = NameTagStyle::None;
    let mut name = name0.to_string();
    let mut name_tags = String::new();
    let mut done = false;
    if o.signalfx {
        match (name0.find('['), name0.find(']')) {
            (Some(a), Some(b)) if a < b => {
                style = NameTagStyle::SignalFx;
                name_tags = name0[a + 1..b].to_string();
                name = format!("{}{}", &name0[..a], &name0[b + 1..]);
                done = true;
            }
            (None, None) => {}
            _ => {
                style = NameTagStyle::SignalFxUnbalanced;
                done = true;
            }
        }
    }
    if !done {
        if let Some(i) = name0.find(|c| (c == '#' && o.librato) || (c == ',' && o.influxdb)) {
            style = if name0.as_bytes()[i] == b'#' {
                NameTagStyle::Librato
            } else {
                NameTagStyle::Influx
            };
            name_tags = name0[i + 1..].to_string();
            name = name0[..i].to_string();
        }
    }
    if name.is_empty() {
        return vec!["err:malformed_line".into()];
    }
    let has_label = !matches!(style, NameTagStyle::None | NameTagStyle::SignalFxUnbalanced)
        && name_tags.split(',').any(|t| match t.find('=') {
            Some(i) => i > 0 && i + 1 < t.len(),
            None => false,
        });
    let dog = rest.contains("|#");
    if dog && has_label {
        return vec!["err:mixed_tagging_styles".into()];
    }
    let parts: Vec<&str> = rest.splitn(3, '|').collect();
    if parts.len() < 2 {
        return vec!["err:not_enough_parts_after_colon".into()];
    }
    let samples: Vec<String> = if parts[0].contains(':') {
        if !matches!(parts[1], "ms" | "h" | "d") {
            return vec!["err:invalid_extended_aggregate_type".into()];
        }
        let suffix = rest.split_once('|').map(|x| x.1).unwrap_or("");
        parts[0]
            .split(':')
            .map(|v| format!("{v}|{suffix}"))
            .collect()
    } else if dog {
        vec![rest.to_string()]
    } else {
        rest.split(':').map(str::to_string).collect()
    };
    let mut out = Vec::new();
    'samples: for sample in samples {
        let comps: Vec<&str> = sample.split('|').collect();
        if comps.len() < 2 || comps.len() > 8 {
            out.push("err:malformed_component".to_string());
            continue;
        }
        let (vs, ts) = (comps[0], comps[1]);
        let relative = vs.starts_with('+') || vs.starts_with('-');
        let value = if ts == "s" {
            if vs.is_empty() {
                out.push("err:malformed_value".into());
                continue;
            }
            format!("'{vs}'")
        } else {
            match oracle_number(vs) {
                Some(v) => format!("{v}"),
                None => {
                    out.push("err:malformed_value".into());
                    continue;
                }
            }
        };
        if comps[2..].iter().any(|c| c.is_empty()) {
            out.push("err:malformed_component".into());
            continue;
        }
        let mut rate = 1.0;
        let mut dog_tags = String::new();
        let mut cid = String::new();
        let mut tag_sections = 0;
        for c in &comps[2..] {
            match c.as_bytes()[0] {
                b'@' => match oracle_number(&c[1..]) {
                    Some(0.0) => rate = 1.0,
                    Some(r) if r > 0.0 && r <= 1.0 => rate = r,
                    _ => {
                        out.push("err:invalid_sample_factor".into());
                        continue 'samples;
                    }
                },
                b'#' => {
                    tag_sections += 1;
                    if tag_sections > 1 {
                        out.push("err:malformed_component".into());
                        continue 'samples;
                    }
                    if o.dogstatsd {
                        dog_tags = c[1..].to_string();
                    }
                }
                b'c' => match c.strip_prefix("c:") {
                    Some(id) if !id.is_empty() => cid = id.to_string(),
                    _ => {
                        out.push("err:malformed_container_id".into());
                        continue 'samples;
                    }
                },
                b'T' => {
                    if c.len() < 2 || c[1..].parse::<i64>().is_err() {
                        out.push("err:malformed_timestamp".into());
                        continue 'samples;
                    }
                }
                _ => {
                    out.push("err:invalid_sample_factor".into());
                    continue 'samples;
                }
            }
        }
        let t = match ts {
            "c" | "g" | "ms" | "h" | "d" | "s" => ts,
            _ => {
                out.push("err:illegal_event".into());
                continue;
            }
        };
        if ts != "s" && ts != "g" && !oracle_number(vs).is_some_and(f64::is_finite) {
            out.push("err:malformed_value".into());
            continue;
        }
        let mut s = format!("{t} {name}={value}");
        if relative {
            s.push_str(" rel");
        }
        if rate != 1.0 {
            s.push_str(&format!(" @{rate}"));
        }
        if style != NameTagStyle::None {
            s.push_str(&format!(" {style:?}[{name_tags}]"));
        }
        if !dog_tags.is_empty() {
            s.push_str(&format!(" #[{dog_tags}]"));
        }
        if !cid.is_empty() {
            s.push_str(&format!(" cid[{cid}]"));
        }
        out.push(s);
    }
    out
}

#[test]
fn oracle_agrees_with_the_table() {
    for (name, line, want) in TABLE {
        assert_eq!(
            oracle(line.as_bytes(), ParseOptions::default()),
            *want,
            "oracle on {name}"
        );
    }
}

/// Lines built from the characters that matter to the grammar.
fn statsd_ish() -> impl Strategy<Value = Vec<u8>> {
    let atom = prop_oneof![
        Just(b"a".to_vec()),
        Just(b"x.y".to_vec()),
        Just(b":".to_vec()),
        Just(b"|".to_vec()),
        Just(b"|c".to_vec()),
        Just(b"|g".to_vec()),
        Just(b"|ms".to_vec()),
        Just(b"|s".to_vec()),
        Just(b"|h".to_vec()),
        Just(b"|@0.5".to_vec()),
        Just(b"|@".to_vec()),
        Just(b"|#".to_vec()),
        Just(b"k:v".to_vec()),
        Just(b",".to_vec()),
        Just(b"=".to_vec()),
        Just(b"#".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b"|c:id".to_vec()),
        Just(b"|T12".to_vec()),
        Just(b"1".to_vec()),
        Just(b"-2.5".to_vec()),
        Just(b"+".to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"1e400".to_vec()),
        Just(b"\xff".to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(b"\x00".to_vec()),
        Just(b"\t".to_vec()),
        Just(b"\x7f".to_vec()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    prop::collection::vec(atom, 0..14).prop_map(|v| v.concat())
}

fn options() -> impl Strategy<Value = ParseOptions> {
    let flags = (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>());
    // Mostly no length limit in play, sometimes a small one.
    let max = prop_oneof![Just(DEFAULT_MAX_LINE_LENGTH), 8usize..64];
    (flags, max).prop_map(|((d, i, l, s), max)| ParseOptions {
        dogstatsd: d,
        influxdb: i,
        librato: l,
        signalfx: s,
        max_line_length: max,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn parser_matches_oracle(line in statsd_ish(), o in options()) {
        // The line iterator never hands the parser a newline or an empty line.
        prop_assume!(!line.contains(&b'\n') && !line.is_empty());
        let fast: Vec<String> = parse_line(&line, o).map(|r| show(&r)).collect();
        prop_assert_eq!(fast, oracle(&line, o), "line {:?}", String::from_utf8_lossy(&line));
    }

    #[test]
    fn lines_match_naive_split(buf in prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'\r'), Just(b'a')], 0..40)) {
        let fast: Vec<&[u8]> = lines(&buf).collect();
        let naive: Vec<&[u8]> = buf
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.is_empty())
            .collect();
        prop_assert_eq!(fast, naive);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    /// The decimal fast path gives exactly the bits the standard parser gives.
    #[test]
    fn simple_decimal_matches_std(s in "[+-]?[0-9]{0,12}(\\.[0-9]{0,8})?") {
        if let Some(v) = super::simple_decimal(s.as_bytes()) {
            let want: f64 = s.parse().map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
            prop_assert_eq!(v.to_bits(), want.to_bits(), "{:?}", s);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    /// The vector scan finds what the byte loop finds, at every length up to and
    /// past its 128-byte limit.
    #[test]
    fn scan_matches_byte_loop(line in prop::collection::vec(
        prop_oneof![
            Just(b':'), Just(b'|'), Just(b'#'), Just(b','), Just(b'['), Just(b']'),
            Just(b'a'), Just(b'a'), Just(b'a'), Just(0x80u8), Just(0xffu8), any::<u8>(),
            Just(0u8), Just(0x1fu8), Just(0x20u8), Just(0x7fu8),
        ],
        0..150,
    )) {
        prop_assert_eq!(super::scan(&line), super::scan_bytes(&line), "{:?}", line);
    }
}

proptest! {
    /// The inline newline search agrees with `memchr` at every length and offset.
    #[test]
    fn newline_search_matches_memchr(buf in prop::collection::vec(
        prop_oneof![Just(b'\n'), Just(b'a'), Just(b'a'), Just(b'a'), Just(b'a'), Just(b'a')],
        0..80,
    )) {
        prop_assert_eq!(super::find_newline(&buf), memchr::memchr(b'\n', &buf));
    }
}

/// Which lines the plain-line shortcut takes: `(line, taken)`. A line it
/// declines goes the general way, which says why it is refused if it is.
#[test]
fn the_plain_shortcut_takes_plain_lines_only() {
    let long_name = "n".repeat(60);
    let at_limit = format!("{long_name}:1|c"); // 64 bytes
    let past_limit = format!("{long_name}x:1|c"); // 65 bytes
    let table: &[(&str, bool)] = &[
        ("a:1|c", true),
        ("a.b_c-d:-2.5|g", true),
        ("a:+3|g", true),
        ("a:12|ms", true),
        ("a:1|h", true),
        ("a:1|d", true),
        ("a:member|s", true),
        ("a:NaN|g", true),
        ("a:NaN|c", false),
        ("a:|s", false),
        ("a:|c", false),
        ("a:1|x", false),
        ("a:1|", false),
        (":1|c", false),
        ("a:1|c|@0.5", false),
        ("a:1|c|#k:v", false),
        ("a:1:2|ms", false),
        ("a:1|c:2|c", false),
        ("a,k=v:1|c", false),
        ("a#k=v:1|c", false),
        ("a[k=v]:1|c", false),
        ("a|b:1", false),
        ("é:1|c", false),
        ("a\t:1|c", false),
        (&at_limit, true),
        (&past_limit, false),
    ];
    for (line, taken) in table {
        let got = matches!(
            super::start_line(line.as_bytes(), ParseOptions::default()),
            super::LineStart::Plain(_)
        );
        assert_eq!(got, *taken, "{line:?}");
        assert!(super::plain_agrees(
            line.as_bytes(),
            ParseOptions::default()
        ));
    }
}

/// Lines of the plain shape, and near misses: a name, `:`, a value, `|`, a
/// type, with a stray byte now and then.
fn plain_ish() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just("1".to_string()),
        Just("-0.25".to_string()),
        Just("+7".to_string()),
        Just("1e3".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("".to_string()),
        Just("x".to_string()),
        "[0-9]{1,18}(\\.[0-9]{0,4})?",
    ];
    let kind = prop_oneof![
        Just("c"),
        Just("g"),
        Just("ms"),
        Just("h"),
        Just("d"),
        Just("s"),
        Just("x"),
        Just(""),
        Just("c|@0.1")
    ];
    let stray = prop_oneof![
        8 => Just(Vec::new()),
        1 => any::<u8>().prop_map(|b| vec![b]),
    ];
    ("[a-z0-9._]{0,70}", value, kind, stray, 0usize..80).prop_map(|(name, v, k, stray, at)| {
        let mut line = format!("{name}:{v}|{k}").into_bytes();
        line.splice(at.min(line.len())..at.min(line.len()), stray);
        line
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    /// Where the plain-line shortcut takes a line, it yields what the general
    /// path yields for it.
    #[test]
    fn plain_lines_match_the_general_path(line in plain_ish(), o in options()) {
        prop_assume!(!line.contains(&b'\n') && !line.is_empty());
        prop_assert!(super::plain_agrees(&line, o), "line {:?}", String::from_utf8_lossy(&line));
    }
}

/// The one-digit shortcut gives the standard parser's value for every digit.
#[test]
fn one_digit_values_match_std() {
    for d in b'0'..=b'9' {
        let want: f64 = (d as char).to_string().parse().unwrap_or(f64::NAN);
        assert_eq!(
            super::parse_number(&[d]).map(f64::to_bits),
            Some(want.to_bits()),
            "{}",
            d as char
        );
    }
}
