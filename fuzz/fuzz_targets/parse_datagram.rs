//! Any bytes through the StatsD line splitter, the line parser and the tag decoder;
//! the parser's vector scan is checked against its byte loop, and its plain-line
//! shortcut against the general path, on every line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promstatsd::parser::{lines, parse_line, plain_agrees, scans_agree, tags, ParseOptions};

fuzz_target!(|data: &[u8]| {
    for opts in [
        ParseOptions::default(),
        ParseOptions {
            dogstatsd: false,
            influxdb: false,
            librato: false,
            signalfx: false,
            max_line_length: 64,
        },
    ] {
        for line in lines(data) {
            assert!(!line.is_empty() && !line.contains(&b'\n'));
            assert!(scans_agree(line), "vector and byte scans differ");
            assert!(
                plain_agrees(line, opts),
                "plain shortcut and general path differ"
            );
            for s in parse_line(line, opts).flatten() {
                assert!(!s.name_head.is_empty() || !s.name_tail.is_empty());
                assert!(s.sample_rate > 0.0 && s.sample_rate <= 1.0);
                let d = tags::decode(&s);
                for w in d.labels.windows(2) {
                    assert!(w[0].0 < w[1].0, "labels sorted and unique");
                }
            }
        }
    }
});
