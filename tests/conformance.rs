//! The README's table of error reasons, line by line, against what promstatsd
//! does: each row's line goes through the library pipeline (parse, map, store)
//! and the page must show the row's promstatsd column.

use promstatsd::{Aggregator, Config};
use std::path::Path;

/// (line, promstatsd column) of every row of the README's reasons table.
fn rows() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let start = readme
        .find("<!-- reasons-table -->")
        .expect("README has the reasons table");
    let end = readme.find("<!-- /reasons-table -->").expect("and its end");
    readme[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| line") && !l.starts_with("| ---"))
        .map(|l| {
            // Cells are split on " | "; an escaped pipe inside code is "\|".
            let cells: Vec<String> = l
                .trim_start_matches("| ")
                .trim_end_matches(" |")
                .split(" | ")
                .map(|c| c.replace("\\|", "|"))
                .collect();
            (cells[0].clone(), cells[1].clone())
        })
        .collect()
}

/// The line a first cell stands for: code as written, or a described line.
fn line_of(cell: &str) -> Vec<u8> {
    match cell.strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
        Some(code) => code.as_bytes().to_vec(),
        None if cell.contains("--statsd.max-line-length") => {
            let limit = promstatsd::parser::DEFAULT_MAX_LINE_LENGTH;
            format!("foo:1|c|#k:{}", "v".repeat(limit)).into_bytes()
        }
        None if cell.contains("control byte") => b"a\x01b:1|c".to_vec(),
        None => panic!("no line for the cell {cell:?}"),
    }
}

/// `promstatsd_sample_errors_total` by reason, those above zero.
fn errors(page: &str) -> Vec<(String, f64)> {
    page.lines()
        .filter_map(|l| l.strip_prefix("promstatsd_sample_errors_total{reason=\""))
        .filter_map(|l| {
            let (reason, rest) = l.split_once("\"} ")?;
            Some((reason.to_owned(), rest.parse().ok()?))
        })
        .filter(|(_, n)| *n > 0.0)
        .collect()
}

#[test]
fn readme_reasons_table_is_what_promstatsd_counts() {
    let rows = rows();
    assert!(rows.len() >= 20, "{rows:?}");
    let mut problems = Vec::new();
    for (cell, ours) in &rows {
        let mut agg = Aggregator::new(&Config::default()).expect("default config");
        agg.ingest(&line_of(cell));
        let page = agg.render_to_string();
        let got = errors(&page);
        let recorded = page.lines().any(|l| l.starts_with("foo"));
        match ours.strip_prefix('`').and_then(|r| r.split('`').next()) {
            Some(reason) => {
                if got != [(reason.to_owned(), 1.0)] {
                    problems.push(format!("{cell}: README says {reason}, counted {got:?}"));
                }
            }
            None if ours.starts_with("accepted") => {
                if !got.is_empty() || !recorded {
                    problems.push(format!("{cell}: README says accepted, counted {got:?}"));
                }
            }
            None => problems.push(format!("{cell}: cannot read the column {ours:?}")),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
