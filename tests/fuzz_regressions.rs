//! Inputs the fuzzers (`fuzz/`) found crashing, replayed forever. Each test names
//! the bug it caught; the input is the exact one the fuzzer wrote.

use promstatsd::mapper::{MapOutcome, Mapper, MapperDefaults};
use promstatsd::parser::MetricType;
use promstatsd::push::{self, PushMethod, PushOptions, PushOutcome};
use promstatsd::store::Store;

#[path = "../fuzz/fuzz_targets/push_checks.rs"]
mod push_checks;

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

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

/// Push `body` to each path in turn; the page must stay valid after each, and
/// the persistence file of the end state must load back to the same bytes (the
/// push targets' checks). Returns each push's outcome.
fn push_and_check(
    method: PushMethod,
    content_type: Option<&str>,
    paths: &[&str],
    body: &[u8],
) -> Vec<PushOutcome> {
    let store = Store::default();
    let opts = PushOptions::default();
    let mut outcomes = Vec::new();
    for path in paths {
        let key = push::parse_group_path(path).unwrap().unwrap();
        let req = push::PushRequest {
            content_type,
            ..push::PushRequest::new(method, &key, body)
        };
        outcomes.push(push::handle(&store, &opts, req));
        push_checks::page_is_valid(&store, path);
    }
    push_checks::state_round_trips(&store);
    outcomes
}

/// push_requests, 2026-12-08 (CI's smoke): a bare `h` sample in a histogram
/// family was accepted and made the whole page invalid. The request that did it.
#[test]
fn push_requests_bare_sample_in_a_histogram() {
    let got = push_and_check(
        PushMethod::Post,
        None,
        &["/metrics/job/a/inacen/tsx"],
        b"# TYPE h histogram\nh 2\n",
    );
    assert!(matches!(&got[..], [PushOutcome::Invalid(_)]), "{got:?}");
}

/// push_protobuf, first crash (2026-12-08): a HELP text starting with a space
/// came back from the persistence file without it.
#[test]
fn push_protobuf_help_with_a_leading_space() {
    const INPUT: &[u8] = &[
        0, 54, 10, 1, 104, 18, 6, 32, 107, 104, 104, 108, 112, 24, 4, 34, 39, 58, 37, 8, 3, 17, 0,
        0, 0, 0, 0, 0, 18, 64, 26, 11, 8, 1, 17, 0, 0, 0, 0, 0, 0, 240, 63, 26, 11, 8, 3, 17, 0, 0,
        0, 0, 0, 0, 240, 127,
    ];
    let got = push_and_check(
        PushMethod::Put,
        Some(PROTOBUF),
        &["/metrics/job/a", "/metrics/job/b/instance/x"],
        &INPUT[1..],
    );
    assert_eq!(got, [PushOutcome::Applied, PushOutcome::Applied]);
}
