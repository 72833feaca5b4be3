//! A sequence of push requests (method, path, body) against one store: never
//! panics, the page stays valid after every request, and the persistence file
//! round-trips whatever was accepted.
//!
//! Input: requests separated by `\0`; in each, the first byte picks the method
//! (PUT, POST, DELETE), then the path up to the first `\n`, then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promstatsd::push::{self, PushMethod, PushOptions};
use promstatsd::store::Store;

#[path = "push_checks.rs"]
mod push_checks;

fuzz_target!(|data: &[u8]| {
    let store = Store::default();
    let opts = PushOptions {
        max_body_bytes: 4096,
        ..PushOptions::default()
    };
    for req in data.split(|b| *b == 0).take(16) {
        let Some((&m, rest)) = req.split_first() else {
            continue;
        };
        let method = match m % 3 {
            0 => PushMethod::Put,
            1 => PushMethod::Post,
            _ => PushMethod::Delete,
        };
        let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let (path, body) = rest.split_at(split);
        let body = body.get(1..).unwrap_or_default();
        let Ok(path) = std::str::from_utf8(path) else {
            continue;
        };
        let Some(Ok(key)) = push::parse_group_path(path) else {
            continue;
        };
        // Every accepted key names itself again through its canonical path.
        let again = push::parse_group_path(&format!("/metrics{}", key.to_path()));
        assert_eq!(again, Some(Ok(key.clone())));
        let req = push::PushRequest {
            method,
            key: &key,
            content_type: None,
            content_encoding: None,
            body,
        };
        push::handle(&store, &opts, req);
        push_checks::page_is_valid(&store, &format!("{method:?} {path:?} {body:?}"));
    }
    push_checks::state_round_trips(&store);
});
