//! promstatsd as a library, without sockets: feed StatsD bytes, render the
//! Prometheus page.
//!
//! `cargo run --example embed_aggregator` prints the page for a few lines of
//! Airflow-style StatsD mapped by the built-in Airflow pack, and exits with an
//! error if the page lacks what the lines should have made.

use promstatsd::reload::MappingSource;
use promstatsd::{Aggregator, Config};
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = Config {
        mapping: Some(MappingSource::Airflow),
        ..Config::default()
    };
    let mut agg = match Aggregator::new(&config) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("embed_aggregator: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Bytes as they would arrive in a datagram: several lines at once.
    agg.ingest(
        b"airflow.ti.finish.etl.load.success:1|c\n\
          airflow.ti.finish.etl.load.success:1|c\n\
          airflow.dagrun.duration.success.etl:1250|ms\n\
          not a statsd line\n",
    );
    let page = agg.render_to_string();
    print!("{page}");
    let expected = [
        "airflow_ti_finish{dag_id=\"etl\",state=\"success\",task_id=\"load\"} 2\n",
        "promstatsd_sample_errors_total{reason=\"malformed_line\"} 1\n",
    ];
    for want in expected {
        if !page.contains(want) {
            eprintln!("embed_aggregator: the page lacks {want:?}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
