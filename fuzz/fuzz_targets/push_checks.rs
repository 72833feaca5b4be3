//! What the push targets check after each request and at the end, shared by
//! `push_requests`, `push_protobuf` and their replays in
//! `tests/fuzz_regressions.rs` (each includes this file by path).

use promstatsd::exposition::{check::check, text::render_to_string};
use promstatsd::push;
use promstatsd::store::Store;

/// The page passes the strict text-format checker; `after` names the request.
pub fn page_is_valid(store: &Store, after: &str) {
    let page = render_to_string(store);
    if let Err(e) = check(page.as_bytes()) {
        panic!("invalid page after {after}: {e}\n{page}");
    }
}

/// The persistence file loads into a fresh store, which writes the same file.
pub fn state_round_trips(store: &Store) {
    let saved = push::serialize(store);
    let text = std::str::from_utf8(&saved).expect("the state file is UTF-8");
    let restored = Store::default();
    if let Err(e) = push::restore(&restored, text) {
        panic!("state does not load back: {e}\n{text}");
    }
    assert_eq!(String::from_utf8_lossy(&push::serialize(&restored)), text);
}
