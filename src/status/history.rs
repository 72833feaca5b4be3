//! Five minutes of self-metric readings, one a second: the rates of every
//! counter over 10 s and 5 min, and the sparklines of the status page.

use crate::model::collect::{SelfFamily, SelfValue};
use crate::vocab::MetricKind;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Readings kept: five minutes and one more, a second apart.
pub const READINGS: usize = 301;

/// The counter behind the sparkline of lines a second.
pub const LINES: &str = "promstatsd_lines_total";
/// The counter behind the sparkline of drops a second (kernel drops).
pub const DROPS: &str = "promstatsd_udp_kernel_drops_total";

/// One reading: when, every counter's value (by [`History`] key index) and
/// the series in the store.
#[derive(Debug)]
struct Reading {
    at: Instant,
    values: Vec<f64>,
    series: usize,
}

/// The readings and the keys (`name{labels}`) their values are indexed by.
#[derive(Debug, Default)]
pub struct History {
    keys: HashMap<String, usize>,
    readings: VecDeque<Reading>,
}

/// A self-metric counter series' key: its name and rendered labels.
pub fn key(name: &str, labels: &[(&str, std::borrow::Cow<'_, str>)]) -> String {
    let mut k = String::with_capacity(name.len() + 16);
    k.push_str(name);
    k.push('{');
    for (i, (n, v)) in labels.iter().enumerate() {
        if i > 0 {
            k.push(',');
        }
        k.push_str(n);
        k.push_str("=\"");
        k.push_str(v);
        k.push('"');
    }
    k.push('}');
    k
}

/// Every counter series of `families`, as `(key, value)`.
pub fn counters(families: &[SelfFamily]) -> impl Iterator<Item = (String, f64)> + '_ {
    families
        .iter()
        .filter(|f| f.kind == MetricKind::Counter)
        .flat_map(|f| {
            f.series.iter().filter_map(|(labels, v)| match v {
                SelfValue::Number(n) => Some((key(f.name, labels), *n)),
                SelfValue::Summary { .. } => None,
            })
        })
}

impl History {
    /// Keep a reading taken at `at`.
    pub fn record(&mut self, at: Instant, families: &[SelfFamily], series: usize) {
        let mut values = Vec::with_capacity(self.keys.len());
        for (k, v) in counters(families) {
            let next = self.keys.len();
            let i = *self.keys.entry(k).or_insert(next);
            if values.len() <= i {
                values.resize(i + 1, f64::NAN);
            }
            if let Some(slot) = values.get_mut(i) {
                *slot = v;
            }
        }
        if self.readings.len() == READINGS {
            self.readings.pop_front();
        }
        self.readings.push_back(Reading { at, values, series });
    }

    /// The rate of counter `key` between the reading about `window` before
    /// `now` (or the oldest, if younger) and its value `current`; `None` with
    /// less than a second of readings.
    pub fn rate(&self, key: &str, current: f64, now: Instant, window: Duration) -> Option<f64> {
        let i = *self.keys.get(key)?;
        let old = match now.checked_sub(window) {
            Some(then) => self.readings.iter().find(|r| r.at >= then),
            None => None,
        }
        .or_else(|| self.readings.front())?;
        let dt = now.duration_since(old.at).as_secs_f64();
        let v = *old.values.get(i)?;
        (dt >= 1.0 && v.is_finite()).then(|| ((current - v) / dt).max(0.0))
    }

    /// Per-second increases of counter `key` between consecutive readings,
    /// oldest first (an absent value counts as no increase).
    pub fn per_second(&self, key: &str) -> Vec<f64> {
        let Some(&i) = self.keys.get(key) else {
            return Vec::new();
        };
        let value = |r: &Reading| r.values.get(i).copied().filter(|v| v.is_finite());
        self.readings
            .iter()
            .zip(self.readings.iter().skip(1))
            .map(|(a, b)| {
                let dt = b.at.duration_since(a.at).as_secs_f64().max(1e-3);
                match (value(a), value(b)) {
                    (Some(x), Some(y)) => ((y - x) / dt).max(0.0),
                    _ => 0.0,
                }
            })
            .collect()
    }

    /// The sum of [`History::per_second`] over every key of counter family
    /// `name` (all label sets).
    pub fn per_second_family(&self, name: &str) -> Vec<f64> {
        let prefix = format!("{name}{{");
        let mut sum: Vec<f64> = Vec::new();
        for k in self.keys.keys().filter(|k| k.starts_with(&prefix)) {
            let one = self.per_second(k);
            if sum.len() < one.len() {
                sum.resize(one.len(), 0.0);
            }
            for (s, v) in sum.iter_mut().zip(one) {
                *s += v;
            }
        }
        sum
    }

    /// The series count of each reading, oldest first.
    pub fn series(&self) -> Vec<f64> {
        self.readings.iter().map(|r| r.series as f64).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::collect::SelfFamily;

    fn lines(n: f64) -> Vec<SelfFamily> {
        vec![SelfFamily::single(LINES, MetricKind::Counter, "", n)]
    }

    /// Rates come from the reading closest to the window's start.
    #[test]
    fn rates_over_each_window() {
        let mut h = History::default();
        let t0 = Instant::now();
        for s in 0..=20u64 {
            h.record(t0 + Duration::from_secs(s), &lines(100.0 * s as f64), 0);
        }
        let now = t0 + Duration::from_secs(20);
        let k = key(LINES, &[]);
        let cases = [
            (Duration::from_secs(10), Some(100.0)),
            (Duration::from_secs(300), Some(100.0)),
        ];
        for (window, want) in cases {
            assert_eq!(h.rate(&k, 2000.0, now, window), want, "{window:?}");
        }
        assert_eq!(
            h.rate(&k, 2500.0, now, Duration::from_secs(10)),
            Some(150.0)
        );
        assert_eq!(h.rate("absent{}", 1.0, now, Duration::from_secs(10)), None);
    }

    /// No rate from less than a second of readings.
    #[test]
    fn no_rate_without_a_second_of_history() {
        let mut h = History::default();
        let t0 = Instant::now();
        h.record(t0, &lines(5.0), 0);
        assert_eq!(
            h.rate(&key(LINES, &[]), 9.0, t0, Duration::from_secs(10)),
            None
        );
    }

    /// Five minutes are kept, no more; per-second increases between readings.
    #[test]
    fn readings_are_bounded_and_differenced() {
        let mut h = History::default();
        let t0 = Instant::now();
        for s in 0..1000u64 {
            h.record(
                t0 + Duration::from_secs(s),
                &lines(3.0 * s as f64),
                s as usize,
            );
        }
        let per_s = h.per_second(&key(LINES, &[]));
        assert_eq!(per_s.len(), READINGS - 1);
        assert!(per_s.iter().all(|v| *v == 3.0), "{per_s:?}");
        assert_eq!(h.series().len(), READINGS);
        assert_eq!(h.series().last(), Some(&999.0));
    }
}
