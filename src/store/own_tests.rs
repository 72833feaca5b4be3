//! Own families (see `series`): a label-less series without a TTL holds its
//! family; labelled series join it in a shared family; every check a family
//! takes part in sees it.

use super::tests::mapping;
use super::*;

fn counter(store: &Store, name: &str, labels: &[(&str, &str)]) -> Result<SeriesArc, Refusal> {
    store.get_or_create(&mapping(name, labels), FamilyKind::Counter)
}

#[test]
fn a_label_less_series_without_ttl_holds_its_family() {
    let store = Store::default();
    let s = counter(&store, "x", &[]).unwrap();
    assert!(s.is_own());
    assert_eq!((s.family_name(), s.labels()), ("x", ""));
    let f = store.family_named("x").unwrap();
    assert_eq!((f.name(), f.kind()), ("x", FamilyKind::Counter));
    // Found again through the index, not made twice.
    assert!(SeriesArc::ptr_eq(&s, &counter(&store, "x", &[]).unwrap()));
    assert_eq!(store.total_series(), 1);
}

#[test]
fn labelled_and_ttl_series_share_a_family() {
    let store = Store::default();
    assert!(!counter(&store, "l", &[("k", "v")]).unwrap().is_own());
    let mut m = mapping("t", &[]);
    m.ttl_secs = 60;
    let t = store.get_or_create(&m, FamilyKind::Counter).unwrap();
    assert!(!t.is_own());
    assert_eq!(t.ttl_secs(), 60);
}

#[test]
fn labelled_series_join_an_own_family() {
    let store = Store::default();
    let bare = counter(&store, "x", &[]).unwrap();
    let a = counter(&store, "x", &[("k", "a")]).unwrap();
    let b = counter(&store, "x", &[("k", "b")]).unwrap();
    assert!(bare.is_own() && !a.is_own());
    assert!(bare.same_family(&a) && a.same_family(&b));
    let (top, families) = store.top_families(4);
    assert_eq!(families, 1);
    assert_eq!((top[0].family.name(), top[0].series), ("x", 3));
    // The family's samples are the own series' and the shared family's.
    for s in [&bare, &a, &b, &b] {
        s.count_sample(atomic::Writers::Sole);
    }
    assert_eq!(store.family_named("x").map(|f| f.samples()), Some(4));
    assert_eq!(top[0].family.samples(), 4);
}

/// A series made: family name, kind, whether it has labels.
type Made = (&'static str, FamilyKind, bool);

#[test]
fn an_own_family_takes_part_in_every_name_check() {
    // (existing family, new one): name, kind, labelled
    let cases: &[(Made, Made)] = &[
        (
            ("x", FamilyKind::Counter, false),
            ("x", FamilyKind::Gauge, false),
        ),
        (
            ("x", FamilyKind::Counter, false),
            ("x", FamilyKind::Gauge, true),
        ),
        (
            ("s", FamilyKind::Summary, false),
            ("s_sum", FamilyKind::Counter, false),
        ),
        (
            ("s", FamilyKind::Summary, false),
            ("s_count", FamilyKind::Gauge, true),
        ),
        (
            ("c_count", FamilyKind::Counter, false),
            ("c", FamilyKind::Summary, false),
        ),
        (
            ("h_bucket", FamilyKind::Gauge, false),
            ("h", FamilyKind::Histogram, true),
        ),
    ];
    for &((name, kind, labelled), (new_name, new_kind, new_labelled)) in cases {
        let store = Store::default();
        let labels: &[(&str, &str)] = if labelled { &[("k", "v")] } else { &[] };
        store.get_or_create(&mapping(name, labels), kind).unwrap();
        let labels: &[(&str, &str)] = if new_labelled { &[("k", "w")] } else { &[] };
        let got = store.get_or_create(&mapping(new_name, labels), new_kind);
        assert_eq!(got.err(), Some(Refusal::Conflict), "{name} then {new_name}");
    }
}

#[test]
fn a_reload_replaces_an_own_family() {
    let store = Store::default();
    let old = counter(&store, "x", &[]).unwrap();
    store.set_mapping_generation(1);
    let mut m = mapping("x", &[]);
    m.help = Arc::from("Redefined.");
    let new = store.get_or_create(&m, FamilyKind::Counter).unwrap();
    assert!(old.is_retired() && !new.is_retired() && new.is_own());
    assert_eq!(&*new.def().help, "Redefined.");
    // The same mapping again in the new generation: the new one stands.
    let again = store.get_or_create(&m, FamilyKind::Counter).unwrap();
    assert!(SeriesArc::ptr_eq(&new, &again));
}

#[test]
fn a_reload_replaces_a_joined_family_whole() {
    let store = Store::default();
    let bare = counter(&store, "x", &[]).unwrap();
    let labelled = counter(&store, "x", &[("k", "v")]).unwrap();
    store.set_mapping_generation(1);
    let mut m = mapping("x", &[("k", "w")]);
    m.help = Arc::from("Redefined.");
    let new = store.get_or_create(&m, FamilyKind::Counter).unwrap();
    assert!(bare.is_retired() && labelled.is_retired());
    assert!(!new.is_own());
    assert_eq!(store.total_series(), 1);
}

#[test]
fn within_a_generation_the_first_definition_of_an_own_family_stands() {
    let store = Store::default();
    let first = counter(&store, "x", &[]).unwrap();
    let mut m = mapping("x", &[]);
    m.help = Arc::from("A second rule's help.");
    let same_key = store.get_or_create(&m, FamilyKind::Counter).unwrap();
    assert!(SeriesArc::ptr_eq(&first, &same_key));
    let mut m = mapping("x", &[("k", "v")]);
    m.help = Arc::from("A second rule's help.");
    let joined = store.get_or_create(&m, FamilyKind::Counter).unwrap();
    assert!(first.same_family(&joined));
}

#[test]
fn an_own_family_and_the_labelled_series_that_joined_it_are_one_block_on_the_page() {
    let mut agg = crate::Aggregator::new(&crate::Config::default()).unwrap();
    agg.ingest(b"x:1|c\nx:2|c|#k:v\nw:1|g\nx:3|c|#k:a");
    let page = agg.render_to_string();
    assert_eq!(page.matches("# TYPE x counter\n").count(), 1, "{page}");
    let block: Vec<&str> = page
        .lines()
        .skip_while(|l| !l.starts_with("# TYPE x "))
        .skip(1)
        .take_while(|l| !l.starts_with('#'))
        .collect();
    assert_eq!(block, ["x 1", "x{k=\"a\"} 3", "x{k=\"v\"} 2"], "{page}");
    assert!(page.contains("# TYPE w gauge\nw 1\n"), "{page}");
}

/// A second rule's mapping of an existing key finds the series (the first
/// definition stands) and counts nothing: the series is once in the store's
/// count and once on the page.
#[test]
fn a_second_rule_for_an_existing_key_finds_it_once() {
    let store = Store::default();
    let first = counter(&store, "x", &[("k", "v")]).unwrap();
    let mut m = mapping("x", &[("k", "v")]);
    m.help = Arc::from("A second rule's help.");
    let again = store.get_or_create(&m, FamilyKind::Counter).unwrap();
    assert!(SeriesArc::ptr_eq(&first, &again));
    assert_eq!(store.total_series(), 1);
    store.with_sorted(|list| assert_eq!(list.len(), 1));
}

/// The same for the own series of a joined family.
#[test]
fn a_second_rule_for_the_own_series_of_a_joined_family_finds_it() {
    let store = Store::default();
    let own = counter(&store, "x", &[]).unwrap();
    counter(&store, "x", &[("k", "v")]).unwrap();
    let mut m = mapping("x", &[]);
    m.help = Arc::from("A second rule's help.");
    let again = store.get_or_create(&m, FamilyKind::Counter).unwrap();
    assert!(SeriesArc::ptr_eq(&own, &again));
    assert_eq!(store.total_series(), 2);
    store.with_sorted(|list| assert_eq!(list.len(), 2));
}
