//! `--table`: every row of the scale issue's table in one run, each on a
//! fresh daemon, then the table with this run's figures beside the goals.
//!
//! statsd_exporter 0.23's figures are the (measured on this machine
//! kind); the bare `recvmmsg` loop is measured in this run, just before the
//! daemon's own search.

use super::{against_bare, finish, memory_and_scrape, start_daemon, Memory, Opts, Share};
use std::net::SocketAddr;

/// One row: what, statsd_exporter's figure, this run's, the goal, and whether
/// lower is better.
struct Row {
    measure: &'static str,
    exporter: &'static str,
    ours: f64,
    unit: &'static str,
    goal: f64,
    lower_is_better: bool,
}

impl Row {
    fn print(&self) {
        let met = if self.lower_is_better {
            self.ours <= self.goal
        } else {
            self.ours >= self.goal
        };
        println!(
            "| {} | {} | {:.0} {} | {} {:.0} {} | {:.2} | {} |",
            self.measure,
            self.exporter,
            self.ours,
            self.unit,
            if self.lower_is_better { "≤" } else { "≥" },
            self.goal,
            self.unit,
            self.ours / self.goal,
            if met { "met" } else { "**not met**" }
        );
    }
}

/// `--memory N --mix MIX --observations K` on a fresh daemon.
fn memory(o: &Opts, udp: u16, web: u16, n: usize, mix: &str, k: usize) -> Memory {
    let mut o = o.clone();
    o.memory = n;
    o.mix = mix.into();
    o.observations = k;
    let target = start_daemon(&o, udp, web);
    let m = memory_and_scrape(&o, &target, SocketAddr::from(([127, 0, 0, 1], udp)));
    finish(target);
    m
}

/// Lines per CPU-second: counters, 40 lines a datagram, 10,000 series.
fn cpu_share(o: &Opts, udp: u16, web: u16) -> Option<Share> {
    let mut o = o.clone();
    o.mix = "counter".into();
    o.tags = "none".into();
    o.series = 10_000;
    o.per_datagram = 40;
    o.search = true;
    against_bare(&o, udp, web)
}

pub fn run(o: &Opts, udp: u16, web: u16) {
    println!("### runs");
    let each = memory(o, udp, web, 1_000_000, "counter", 1);
    let labelled = memory(o, udp, web, 1_000_000, "labelled", 1);
    let summaries = memory(o, udp, web, 10_000, "timer", 10);
    let cpu = cpu_share(o, udp, web);
    println!();
    println!("### the scale issue's table, this run");
    println!(
        "| measure | statsd_exporter 0.23 (issue) | promstatsd | goal | promstatsd / goal | |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    let rows = [
        Row {
            measure: "bytes per counter series, 1,000,000 series, a family each",
            exporter: "3,746",
            ours: each.bytes_per_series,
            unit: "B",
            goal: 187.0,
            lower_is_better: true,
        },
        Row {
            measure: "bytes per labelled counter series (1,000,000)",
            exporter: "—",
            ours: labelled.bytes_per_series,
            unit: "B",
            goal: 150.0,
            lower_is_better: true,
        },
        Row {
            measure: "peak RSS added by scraping the a-family-each page",
            exporter: "+442 MiB",
            ours: each.peak_added_mib,
            unit: "MiB",
            goal: 32.0,
            lower_is_better: true,
        },
        Row {
            measure: "1M-series scrape, a family each, to the last byte",
            exporter: "7.3 s",
            ours: each.scrape_ms,
            unit: "ms",
            goal: 250.0,
            lower_is_better: true,
        },
        Row {
            measure: "timer summaries, bytes per series (10k × 10 obs)",
            exporter: "41,675",
            ours: summaries.bytes_per_series,
            unit: "B",
            goal: 600.0,
            lower_is_better: true,
        },
    ];
    for r in &rows {
        r.print();
    }
    match cpu {
        Some(share) => {
            Row {
                measure: "lines per CPU-second, 40 lines/datagram, 10k series, share of the bare loop's (median of 5 pairs)",
                exporter: "0.11 M",
                ours: share.median,
                unit: "%",
                goal: 50.0,
                lower_is_better: false,
            }
            .print();
            println!(
                "| (the median pair, absolute: promstatsd / bare loop, this run) | | {:.2} / {:.2} M | | | |",
                share.daemon / 1e6,
                share.bare / 1e6
            );
        }
        None => println!("| lines per CPU-second | 0.11 M | no zero-loss rate found | | | |"),
    }
    println!(
        "| (series loaded: {:.0}, {:.0}, {:.0}) | | | | | |",
        each.series, labelled.series, summaries.series
    );
}
