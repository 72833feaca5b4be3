//! Parse -> map -> store -> render on structured input. The rendered page must
//! pass the project's exposition-format check, and every sample must be accounted
//! for: recorded, or counted as a conflict, an error or a drop.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use promstatsd::exposition::check::check;
use promstatsd::mapper::{Mapper, MapperDefaults, ObserverType};
use promstatsd::model::collect::{SelfFamily, SelfValue};
use promstatsd::reload::MappingSource;
use promstatsd::{Aggregator, Config};
use std::sync::OnceLock;

#[derive(Arbitrary, Debug)]
enum Mapping {
    None,
    Airflow,
}

#[derive(Arbitrary, Debug)]
struct Input {
    mapping: Mapping,
    histograms: bool,
    max_series: u8,
    cache_entries: u8,
    packets: Vec<Vec<u8>>,
}

fn total(fams: &[SelfFamily], name: &str) -> f64 {
    fams.iter()
        .filter(|f| f.name == name)
        .flat_map(|f| f.series.iter())
        .map(|(_, v)| match v {
            SelfValue::Number(n) => *n,
            SelfValue::Summary { count, .. } => *count as f64,
        })
        .sum()
}

fuzz_target!(|input: Input| {
    static AIRFLOW: OnceLock<Mapper> = OnceLock::new();
    let mut cfg = Config::default();
    if input.histograms {
        cfg.mapper.observer = ObserverType::Histogram;
    }
    cfg.store.max_series = usize::from(input.max_series);
    cfg.cache_entries = usize::from(input.cache_entries);
    let mapper = match input.mapping {
        Mapping::None => Mapper::new(cfg.mapper.clone()),
        Mapping::Airflow => AIRFLOW
            .get_or_init(
                || match MappingSource::Airflow.load(&MapperDefaults::default()) {
                    Ok((m, _)) => m,
                    Err(e) => panic!("the Airflow pack must load: {e}"),
                },
            )
            .clone(),
    };
    let mut agg = Aggregator::with_mapper(&cfg, mapper.clone());
    let mut each = Aggregator::with_mapper(&cfg, mapper);
    for p in &input.packets {
        agg.ingest(p);
        each.ingest_each_line(p);
    }
    let mut page = Vec::new();
    agg.render(&mut page);
    // The pipelined path and the line-at-a-time one agree (but for the cache
    // flush count: which entries a flush keeps depends on each cache's hash seed).
    let mut other = Vec::new();
    each.render(&mut other);
    let strip = |p: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(p)
            .lines()
            .filter(|l| !l.contains("cache_flushes"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        strip(&page),
        strip(&other),
        "pipelined and line-by-line differ"
    );
    if let Err(e) = check(&page) {
        panic!("invalid page: {e}\n{}", String::from_utf8_lossy(&page));
    }
    // The strict body parser (the one pushes will go through) reads it back too.
    let text = String::from_utf8_lossy(&page);
    if let Err(e) = promstatsd::push::body::parse(&text) {
        panic!("page does not parse back: {e}\n{text}");
    }
    let fams = agg.store().self_families();
    let samples = total(&fams, "promstatsd_samples_total");
    let accounted = total(&fams, "promstatsd_events_total")
        + total(&fams, "promstatsd_events_conflict_total")
        + total(&fams, "promstatsd_events_error_total")
        + total(&fams, "promstatsd_events_actions_total");
    assert_eq!(samples, accounted, "samples not accounted for");
});
