//! Any text through the strict text-format parser (bodies of pushes): never
//! panics, and what it accepts holds together.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promstatsd::push::body::parse;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(families) = parse(text) {
        let mut names = std::collections::HashSet::new();
        for f in &families {
            assert!(!f.name.is_empty());
            assert!(!f.samples.is_empty(), "empty families are left out");
            assert!(names.insert(f.name), "family {} twice", f.name);
            for s in &f.samples {
                assert!(s.name.starts_with(f.name));
            }
        }
    }
});
