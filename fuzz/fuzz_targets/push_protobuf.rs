//! A delimited protobuf push body (as the Go client sends by default), pushed
//! to two groups: never panics, the page stays valid after each push, and the
//! persistence file round-trips whatever was accepted.
//!
//! Input: the first byte's bit 0 picks the method (PUT, POST), bits 1-2 the
//! second group ([`SECOND`]; the first is always `job="a"`), bit 3 sends the
//! body as `Content-Encoding: gzip`; the rest is the body. Seeds
//! (`seeds/push_protobuf/`, from `make_protobuf_seeds.py`) are bodies of each
//! metric type, plain and gzipped, plus the inputs that once crashed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promstatsd::push::{self, PushMethod, PushOptions};
use promstatsd::store::Store;

#[path = "push_checks.rs"]
mod push_checks;

const PROTOBUF: &str =
    "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

/// The second group a body goes to: another, the same again, and grouping
/// keys whose labels a histogram's or a summary's samples carry themselves.
const SECOND: [&str; 4] = [
    "/metrics/job/b/instance/x",
    "/metrics/job/a",
    "/metrics/job/a/le/1",
    "/metrics/job/a/quantile/0.5",
];

fuzz_target!(|data: &[u8]| {
    let Some((&m, body)) = data.split_first() else {
        return;
    };
    let method = if m & 1 == 0 {
        PushMethod::Put
    } else {
        PushMethod::Post
    };
    let store = Store::default();
    let opts = PushOptions {
        max_body_bytes: 4096,
        ..PushOptions::default()
    };
    // The second group makes every accepted family meet itself across groups.
    let encoding = (m & 8 != 0).then_some("gzip");
    for path in ["/metrics/job/a", SECOND[usize::from(m >> 1) % SECOND.len()]] {
        let Some(Ok(key)) = push::parse_group_path(path) else {
            panic!("{path} is a group path");
        };
        let req = push::PushRequest {
            method,
            key: &key,
            content_type: Some(PROTOBUF),
            content_encoding: encoding,
            body,
        };
        push::handle(&store, &opts, req);
        push_checks::page_is_valid(&store, &format!("{method:?} {path}"));
    }
    push_checks::state_round_trips(&store);
});
