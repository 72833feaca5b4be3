//! Inputs the fuzzers (`fuzz/`) found crashing, replayed forever. Each test names
//! the bug it caught; the input is the exact one the fuzzer wrote.

use promstatsd::mapper::{MapOutcome, Mapper, MapperDefaults};
use promstatsd::parser::MetricType;

/// load_mapping, first crash (empty input): an empty mapping file left the mapper
/// mapping an empty raw name to an empty family name instead of refusing it.
#[test]
fn load_mapping_empty_file_then_empty_name() {
    let (m, _) = Mapper::from_yaml("fuzz.yml", "", &MapperDefaults::default()).unwrap();
    assert_eq!(
        m.map("", MetricType::Counter, vec![]),
        MapOutcome::EmptyName
    );
}
