//! Any text as a `--web.config.file`: parsing never panics, and an accepted
//! configuration answers authorization checks without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use promstatsd::exposition::webconfig::WebConfig;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(cfg) = WebConfig::parse(Path::new("/nonexistent/web.yml"), text) {
        for h in [
            None,
            Some("Basic"),
            Some("Basic !!"),
            Some("Basic dTpw"),
            Some("Bearer x"),
        ] {
            let _ = cfg.authorized(h);
        }
    }
});
