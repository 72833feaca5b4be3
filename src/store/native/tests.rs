//! Tables computed by hand from client_golang's rules (each case's comment
//! says how), a logarithm oracle for the index away from bucket edges, and
//! the halving and span rules.

use super::*;
use proptest::prelude::*;

#[test]
fn the_schema_follows_the_bucket_factor() {
    let cases: &[(f64, Option<i8>)] = &[
        (1.1, Some(3)), // 2^(2^-3) = 1.0905 <= 1.1 < 2^(2^-2) = 1.189
        (1.5, Some(1)),
        (1.2, Some(2)),
        (1.05, Some(4)),
        (1.01, Some(7)),
        (1.005, Some(8)),
        (1.001, Some(8)), // clamped: 2^(2^-8) = 1.0027 > 1.001
        (2.0, Some(0)),
        (4.0, Some(-1)),
        (65_536.0, Some(-4)),
        (1e12, Some(-4)),
        (1.0, None), // no native part
        (0.5, None),
        (f64::NAN, None),
    ];
    for (factor, want) in cases {
        assert_eq!(NativeOptions::schema_for(*factor), *want, "{factor}");
    }
}

#[test]
fn bucket_indexes_by_hand() {
    // Bucket i holds (base^(i-1), base^i], base = 2^(2^-schema).
    let cases: &[(f64, i8, i32)] = &[
        (1.0, 3, 0),  // the upper bound of bucket 0 is 1
        (1.05, 3, 1), // (1, 1.0905]
        (2.0, 3, 8),  // 2 = base^8 at schema 3
        (2.000_001, 3, 9),
        (0.001, 3, -79),     // (2^-10, 2^-9.875] = (0.000977, 0.001064]
        (600.0, 3, 74),      // 2^(73/8) = 558 < 600 <= 2^(74/8) = 608.9
        (f64::MAX, 3, 8192), // 2^schema * 1024
        (f64::INFINITY, 3, 8193),
        (1.0, 0, 0),
        (2.0, 0, 1),
        (3.0, 0, 2),
        (0.5, 0, -1),
        (4.0, -1, 1), // base 4: (1, 4]
        (5.0, -1, 2),
        (0.25, -1, -1), // (1/16, 1/4]
        (0.3, -1, 0),
        (65_536.0, -4, 1), // base 2^16
        (0.5, -4, 0),      // (2^-16, 1]
        (1.0, 8, 0),
        (f64::MAX, 8, 262_144),
        (5e-324, 0, -1074), // the least subnormal, 2^-1074
    ];
    for (v, schema, want) in cases {
        assert_eq!(bucket_index(*v, *schema), *want, "{v} at schema {schema}");
    }
}

proptest! {
    /// Oracle: away from a bucket edge, the index is ceil(log2(v) * 2^schema).
    #[test]
    fn the_index_agrees_with_a_logarithm(v in 1e-9f64..1e9, schema in -4i8..=8) {
        let x = v.log2() * f64::from(schema).exp2();
        prop_assume!((x - x.round()).abs() > 1e-6);
        prop_assert_eq!(bucket_index(v, schema), x.ceil() as i32);
    }
}

#[test]
fn halving_maps_each_index_to_its_half_rounded_up() {
    let cases: &[(i32, i32)] = &[
        (3, 2),
        (4, 2),
        (1, 1),
        (0, 0),
        (-1, 0),
        (-2, -1),
        (-3, -1),
        (-4, -2),
    ];
    for (from, to) in cases {
        let mut b = Buckets::default();
        b.add(*from, 5);
        b.halve();
        assert_eq!(b.iter().collect::<Vec<_>>(), [(*to, 5)], "{from}");
    }
    let mut b = Buckets::default();
    for k in [-3, -2, 3, 4] {
        b.add(k, 1);
    }
    b.halve();
    assert_eq!(b.iter().collect::<Vec<_>>(), [(-1, 2), (2, 2)]);
    assert_eq!(b.populated, 2);
}

#[test]
fn past_the_bucket_limit_the_resolution_halves_once_per_observation() {
    let mut h = Native::new(3, 4);
    // 1, 2, 4, 8 at schema 3: buckets 0, 8, 16, 24.
    for v in [1.0, 2.0, 4.0, 8.0] {
        h.observe(v, 1);
    }
    assert_eq!(h.schema(), 3);
    h.observe(16.0, 1); // a fifth bucket (32): halve once, to schema 2
    assert_eq!(h.schema(), 2);
    let want: Vec<(i32, u64)> = vec![(0, 1), (4, 1), (8, 1), (12, 1), (16, 1)];
    assert_eq!(h.positive().iter().collect::<Vec<_>>(), want);
    // Still five buckets: the next observation halves again.
    h.observe(1.0, 1);
    assert_eq!(h.schema(), 1);
    assert_eq!(
        h.positive().iter().collect::<Vec<_>>(),
        [(0, 2), (2, 1), (4, 1), (6, 1), (8, 1)]
    );
}

#[test]
fn zero_nan_and_negative_values() {
    let mut h = Native::new(3, 0);
    h.observe(0.0, 2);
    h.observe(1e-40, 1); // below 2^-128
    h.observe(f64::NAN, 1);
    h.observe(-1.05, 3);
    assert_eq!(h.count(), 7);
    assert_eq!(h.zero_count(), 3);
    assert_eq!(h.negative().iter().collect::<Vec<_>>(), [(1, 3)]);
    assert_eq!(h.positive().iter().count(), 0);
}

#[test]
fn spans_fill_gaps_of_two_and_open_on_wider_ones() {
    let mut b = Buckets::default();
    for (k, c) in [(0, 1), (1, 2), (3, 1), (10, 5), (-2, 1)] {
        b.add(k, c);
    }
    let (mut spans, mut deltas) = (Vec::new(), Vec::new());
    b.spans_and_deltas(&mut spans, &mut deltas);
    // -2 | gap 1 filled | 0, 1 | gap 1 filled | 3 | gap of 6 | 10
    assert_eq!(spans, [(-2, 6), (6, 1)]);
    assert_eq!(deltas, [1, -1, 1, 1, -2, 1, 4]);
}

#[test]
fn counts_widen_as_they_grow_and_keep_their_values() {
    let mut b = Buckets::default();
    b.add(5, 1);
    b.add(2, 1);
    assert_eq!(b.counts.width, 1);
    let steps: &[(u64, usize)] = &[(254, 1), (1, 2), (70_000, 4), (u64::from(u32::MAX), 8)];
    let mut total = 1u64;
    for (n, width) in steps {
        b.add(5, *n);
        total += n;
        assert_eq!(b.counts.width, *width, "after {total}");
        assert_eq!(b.iter().collect::<Vec<_>>(), [(2, 1), (5, total)]);
    }
    assert_eq!(b.counts.bytes.len(), 4 * 8, "four counts of eight bytes");
}

fn observation() -> impl Strategy<Value = (f64, u64)> {
    let value = prop_oneof![
        8 => (1e-4f64..1e4).prop_map(|v| v),
        2 => (1e-4f64..1e4).prop_map(|v| -v),
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
    ];
    // Mostly single observations; sometimes a sampled one, sometimes one
    // weight large enough to widen a count.
    let weight = prop_oneof![8 => Just(1u64), 2 => 1u64..20, 1 => 200u64..70_000];
    (value, weight)
}

proptest! {
    /// Oracle: the shared, lock-free histogram holds what the plain model
    /// holds after the same observations, whatever the limit.
    #[test]
    fn the_shared_histogram_agrees_with_the_model(
        obs in proptest::collection::vec(observation(), 0..200),
        schema in -2i8..=8,
        max_buckets in prop_oneof![Just(0u32), 2u32..12, Just(256)],
    ) {
        let opts = NativeOptions { schema, max_buckets };
        let shared = SharedNative::new(opts);
        let mut model = Native::new(schema, max_buckets);
        for (v, n) in &obs {
            shared.observe(*v, *n, crate::store::atomic::Writers::Sole);
            model.observe(*v, *n);
        }
        let got = shared.snapshot();
        prop_assert_eq!(got.schema(), model.schema());
        prop_assert_eq!(got.count(), model.count());
        prop_assert_eq!(got.zero_count(), model.zero_count());
        prop_assert_eq!(got.positive().iter().collect::<Vec<_>>(), model.positive().iter().collect::<Vec<_>>());
        prop_assert_eq!(got.negative().iter().collect::<Vec<_>>(), model.negative().iter().collect::<Vec<_>>());
        let (mut spans, mut deltas) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
        let (s, count, zero) = shared.read(&mut spans, &mut deltas);
        prop_assert_eq!((s, count, zero), (model.schema(), model.count(), model.zero_count()));
        let (mut ms, mut md) = (Vec::new(), Vec::new());
        model.positive().spans_and_deltas(&mut ms, &mut md);
        prop_assert_eq!(&spans[0], &ms);
        prop_assert_eq!(&deltas[0], &md);
    }
}

#[test]
fn a_reader_never_sees_more_in_the_buckets_than_the_count() {
    use crate::store::atomic::Writers;
    use std::sync::atomic::{AtomicBool, Ordering};
    let shared = std::sync::Arc::new(SharedNative::new(NativeOptions {
        schema: 3,
        max_buckets: 40,
    }));
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let reader = {
        let (shared, stop) = (std::sync::Arc::clone(&shared), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            let (mut spans, mut deltas) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
            let mut reads = 0u64;
            // Relaxed: a stop flag; nothing else is published through it.
            while !stop.load(Ordering::Relaxed) {
                let (_, count, zero) = shared.read(&mut spans, &mut deltas);
                let in_buckets: i64 = deltas
                    .iter()
                    .map(|d| {
                        d.iter()
                            .scan(0i64, |c, x| {
                                *c += x;
                                Some(*c)
                            })
                            .sum::<i64>()
                    })
                    .sum();
                assert!(
                    in_buckets as u64 + zero <= count,
                    "{in_buckets} + {zero} > {count}"
                );
                reads += 1;
            }
            reads
        })
    };
    // Values over many octaves: the span grows, counts widen, and past 40
    // buckets the resolution halves, all while the reader reads.
    for i in 0..200_000u64 {
        let v = 1.0001f64.powi((i % 100_000) as i32) * if i % 7 == 0 { -1.0 } else { 1.0 };
        shared.observe(if i % 1000 == 0 { 0.0 } else { v }, 1, Writers::Sole);
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap_or(0);
    assert!(reads > 0);
    assert_eq!(shared.snapshot().count(), 200_000);
}
