//! Any text through the strict text-format parser (bodies of pushes): never
//! panics, and what it accepts holds together.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promstatsd::exposition::textparse::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(families) = parse(text) {
        for f in &families {
            assert!(!f.name.is_empty());
            for s in &f.samples {
                assert!(s.name.starts_with(f.name));
                if f.kind == "counter" {
                    assert!(!(s.value < 0.0));
                }
            }
        }
    }
});
