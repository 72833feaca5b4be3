//! Any text as a mapping file: loading never panics, and a loaded mapping maps
//! names without panicking and always to a valid family name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promstatsd::mapper::{MapOutcome, Mapper, MapperDefaults};
use promstatsd::parser::MetricType;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok((m, _warnings)) = Mapper::from_yaml("fuzz.yml", text, &MapperDefaults::default()) else {
        return;
    };
    for name in ["a.b.c", "airflow.dag.x.y.duration", "", "x", "a..b", "é.1"] {
        for t in [MetricType::Counter, MetricType::Gauge, MetricType::Timer] {
            if let MapOutcome::Map(mapping) = m.map(name, t, vec![("tag".into(), "v".into())]) {
                let b = mapping.name.as_bytes();
                assert!(!b.is_empty());
                assert!(!b[0].is_ascii_digit());
                assert!(b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_'));
                assert!(mapping.labels.windows(2).all(|w| w[0].0 < w[1].0));
            }
        }
    }
});
