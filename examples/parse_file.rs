//! Parse a file of StatsD lines a number of times and print how many samples
//! parsed: the parser alone, for instruction counts that do not depend on the
//! machine's load (BENCHMARKS.md, "Parser: control bytes in a name refused"):
//!
//! ```text
//! cargo build --release --example parse_file
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   target/release/examples/parse_file tests/data/airflow-3.3.2-plain.statsd 200
//! ```

use promstatsd::parser::{lines, parse_line, ParseOptions};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), passes) = (args.next(), args.next()) else {
        eprintln!("usage: parse_file FILE [PASSES (200)]");
        return ExitCode::from(2);
    };
    let passes: usize = passes.and_then(|p| p.parse().ok()).unwrap_or(200);
    let buf = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("parse_file: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = ParseOptions::default();
    let mut samples = 0usize;
    for _ in 0..passes {
        for line in lines(std::hint::black_box(&buf)) {
            samples += parse_line(line, opts).filter(Result::is_ok).count();
        }
    }
    println!("{samples} samples in {passes} passes");
    ExitCode::SUCCESS
}
