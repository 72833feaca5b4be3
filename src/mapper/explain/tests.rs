use super::*;
use crate::mapper::config::{Defaults, MatchType};
use proptest::prelude::*;

const HELM: &str = include_str!("../../../tests/data/airflow-helm-statsd-mappings.yml");

const NO_ORDER: &str = "defaults:
  glob_disable_ordering: true
mappings:
- match: noorder.*.*
  name: any
- match: noorder.*.bbb
  name: bbb
- match: noorder.ccc.bbb
  name: ccc
  match_metric_type: counter
- match: noorder\\.(.*)
  match_type: regex
  name: re
";

const TYPED: &str = "mappings:
- match: t.*
  name: counter_$1
  match_metric_type: counter
- match: t.*
  name: other_$1
";

fn mapper(text: &str) -> Mapper {
    Mapper::from_yaml("f.yml", text, &Defaults::default())
        .unwrap()
        .0
}

fn line(m: &Mapper, index: usize) -> usize {
    m.rules()[index].line.unwrap()
}

/// The outcome as `family{k="v",...}`, `drop` or `empty`.
fn outcome(o: &MapOutcome) -> String {
    match o {
        MapOutcome::Map(m) => {
            let labels: Vec<String> = m.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            format!("{}{{{}}}", m.name, labels.join(","))
        }
        MapOutcome::Drop => "drop".to_owned(),
        MapOutcome::EmptyName => "empty".to_owned(),
    }
}

/// The skipped rules whose pattern matched, as `(line, reason)`, winners by line.
fn notable(m: &Mapper, e: &Explanation) -> Vec<(usize, String)> {
    e.skipped
        .iter()
        .filter(|s| s.reason != SkipReason::NoMatch)
        .map(|s| {
            let why = match s.reason {
                SkipReason::NoMatch => unreachable!(),
                SkipReason::MetricType { rule, sample } => format!("type {rule:?} not {sample:?}"),
                SkipReason::LessSpecific { winner } => {
                    format!("less specific than {}", line(m, winner))
                }
                SkipReason::RegexAfterGlobs { winner } => {
                    format!("regex after glob {}", line(m, winner))
                }
                SkipReason::Unexplained => "unexplained".to_owned(),
            };
            (line(m, s.rule), why)
        })
        .collect()
}

struct Case {
    name: &'static str,
    ty: MetricType,
    tags: &'static [(&'static str, &'static str)],
    /// Line of the deciding rule.
    line: Option<usize>,
    outcome: &'static str,
    notable: &'static [(usize, &'static str)],
}

const fn case(
    name: &'static str,
    ty: MetricType,
    line: Option<usize>,
    outcome: &'static str,
) -> Case {
    Case {
        name,
        ty,
        tags: &[],
        line,
        outcome,
        notable: &[],
    }
}

fn check(text: &str, cases: &[Case]) {
    let m = mapper(text);
    for c in cases {
        let tags: Vec<(String, String)> = c
            .tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let e = m.explain(c.name, c.ty, tags.clone());
        assert_eq!(e.rule.map(|r| line(&m, r)), c.line, "{}: rule", c.name);
        assert_eq!(outcome(&e.outcome), c.outcome, "{}: outcome", c.name);
        assert_eq!(
            e.outcome,
            m.map(c.name, c.ty, tags),
            "{}: map agrees",
            c.name
        );
        let want: Vec<(usize, String)> =
            c.notable.iter().map(|(l, w)| (*l, w.to_string())).collect();
        assert_eq!(notable(&m, &e), want, "{}: skipped", c.name);
    }
}

use MetricType::{Counter, Gauge, Timer};

#[test]
fn helm_globs_name_their_rule_and_captures() {
    check(
        HELM,
        &[
            case(
                "airflow.dag.mydag.mytask.duration",
                Timer,
                Some(55),
                r#"airflow_task_duration{dag_id="mydag",task_id="mytask"}"#,
            ),
            case(
                "airflow.dagrun.dependency-check.etl.x",
                Timer,
                Some(26),
                r#"airflow_dagrun_dependency_check{dag_id="etl"}"#,
            ),
            case(
                "airflow.ti.deferred.default.etl.wait",
                Gauge,
                Some(137),
                r#"airflow_ti_deferred{dag_id="etl",queue="default",task_id="wait"}"#,
            ),
        ],
    );
}

#[test]
fn helm_regexes_match_anywhere_in_the_name() {
    check(
        HELM,
        &[
            case(
                "airflow.operator_successes_BashOperator",
                Counter,
                Some(31),
                r#"airflow_operator_successes{operator="BashOperator"}"#,
            ),
            case(
                "x.airflow.operator_failures_PythonOperator",
                Counter,
                Some(37),
                r#"airflow_operator_failures{operator="PythonOperator"}"#,
            ),
            case(
                "airflow.scheduler_heartbeat",
                Counter,
                Some(43),
                r#"airflow_scheduler_heartbeat{type="counter"}"#,
            ),
        ],
    );
}

#[test]
fn helm_glob_beats_an_earlier_regex() {
    check(
        HELM,
        &[Case {
            notable: &[(31, "regex after glob 86")],
            ..case(
                "airflow.pool.open_slots.airflow_operator_successes_x",
                Gauge,
                Some(86),
                r#"airflow_pool_open_slots{pool="airflow_operator_successes_x"}"#,
            )
        }],
    );
}

#[test]
fn helm_unmatched_names_are_escaped_with_their_tags() {
    check(
        HELM,
        &[
            case(
                "airflow.scheduler.tasks.running",
                Gauge,
                None,
                "airflow_scheduler_tasks_running{}",
            ),
            Case {
                tags: &[("host", "w1")],
                ..case(
                    "airflow.dag.etl.duration",
                    Timer,
                    None,
                    r#"airflow_dag_etl_duration{host="w1"}"#,
                )
            },
        ],
    );
}

#[test]
fn helm_rule_labels_override_tags() {
    check(
        HELM,
        &[Case {
            tags: &[("pool", "other"), ("zone", "a")],
            ..case(
                "airflow.pool.open_slots.default",
                Gauge,
                Some(86),
                r#"airflow_pool_open_slots{pool="default",zone="a"}"#,
            )
        }],
    );
}

#[test]
fn pack_globs_map_and_restore_dots() {
    check(
        AIRFLOW,
        &[
            case(
                "airflow.ti.finish.etl.group__load.success",
                Counter,
                Some(23),
                r#"airflow_ti_finish{dag_id="etl",state="success",task_id="group.load"}"#,
            ),
            case(
                "airflow.pool.open_slots.default_pool",
                Gauge,
                Some(174),
                r#"airflow_pool_open_slots{pool="default_pool"}"#,
            ),
            case(
                "airflow.dag.etl.load.duration",
                Timer,
                Some(67),
                r#"airflow_task_duration{dag_id="etl",task_id="load"}"#,
            ),
        ],
    );
}

#[test]
fn pack_drops_the_new_name_twins() {
    check(
        AIRFLOW,
        &[
            case("airflow.ti.finish", Counter, Some(64), "drop"),
            case("airflow.task.duration", Timer, Some(82), "drop"),
            case("airflow.pool.open_slots", Gauge, Some(178), "drop"),
        ],
    );
}

#[test]
fn pack_regexes_come_after_every_glob() {
    check(
        AIRFLOW,
        &[
            case(
                "airflow.operator_successes_BashOperator",
                Counter,
                Some(246),
                r#"airflow_operator_successes{operator="BashOperator"}"#,
            ),
            case(
                "airflow.dag.etl.group.load.duration",
                Timer,
                Some(262),
                r#"airflow_task_duration{dag_id="etl",task_id="group.load"}"#,
            ),
        ],
    );
}

#[test]
fn pack_unmatched_names_pass_through() {
    check(
        AIRFLOW,
        &[case(
            "airflow.scheduler_heartbeat",
            Counter,
            None,
            "airflow_scheduler_heartbeat{}",
        )],
    );
}

#[test]
fn pack_scale_is_in_the_outcome() {
    let m = mapper(AIRFLOW);
    let e = m.explain("airflow.dag_processing.last_duration.b.f_py", Timer, vec![]);
    assert_eq!(e.rule.map(|r| line(&m, r)), Some(204));
    let MapOutcome::Map(mapping) = e.outcome else {
        panic!("mapped");
    };
    assert_eq!(mapping.scale, Some(1000.0));
}

#[test]
fn without_ordering_a_less_specific_glob_is_named() {
    check(
        NO_ORDER,
        &[
            Case {
                notable: &[(4, "less specific than 6")],
                ..case("noorder.good.bbb", Gauge, Some(6), "bbb{}")
            },
            Case {
                notable: &[(4, "less specific than 8"), (6, "less specific than 8")],
                ..case("noorder.ccc.bbb", Counter, Some(8), "ccc{}")
            },
        ],
    );
}

#[test]
fn without_ordering_a_later_glob_of_another_type_is_named() {
    check(
        NO_ORDER,
        &[Case {
            notable: &[(4, "less specific than 6"), (8, "type Counter not Gauge")],
            ..case("noorder.ccc.bbb", Gauge, Some(6), "bbb{}")
        }],
    );
}

#[test]
fn a_regex_decides_when_no_glob_matches() {
    let m = mapper(NO_ORDER);
    let e = m.explain("noorder.x", Counter, vec![]);
    assert_eq!(e.rule.map(|r| line(&m, r)), Some(11));
    assert_eq!(
        e.skipped,
        (0..3)
            .map(|rule| Skipped {
                rule,
                reason: SkipReason::NoMatch
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn match_metric_type_skips_a_rule() {
    check(
        TYPED,
        &[
            case("t.x", Counter, Some(2), "counter_x{}"),
            Case {
                notable: &[(2, "type Counter not Gauge")],
                ..case("t.x", Gauge, Some(5), "other_x{}")
            },
            Case {
                notable: &[(2, "type Counter not Timer")],
                ..case("t.x", Timer, Some(5), "other_x{}")
            },
        ],
    );
}

#[test]
fn glob_matching_alone() {
    let cases: &[(&str, &str, bool)] = &[
        ("a.*.c", "a.b.c", true),
        ("a.*.c", "a..c", true),
        ("a.*.c", "a.b.x.c", false),
        ("a.*.c", "a.c", false),
        ("a.b", "a.b.c", false),
        ("*", "", true),
    ];
    for (pattern, name, want) in cases {
        assert_eq!(glob_matches(pattern, name), *want, "{pattern} {name}");
    }
}

const AIRFLOW: &str = crate::mapper::AIRFLOW_PACK;

/// The rule a plain reading of the statsd_exporter semantics picks: among the
/// globs that match and take the type, the first in file order (or, without
/// ordering, the most specific: literal beats `*`, left to right; ties to the
/// first); failing that, the first such regex.
fn model_choice(m: &Mapper, name: &str, ty: MetricType) -> Option<usize> {
    let takes =
        |r: &&Rule| rule_matches(r, name) && r.metric_type.is_none_or(|t| t == type_filter(ty));
    let specificity = |r: &Rule| -> Vec<bool> { r.pattern.split('.').map(|c| c != "*").collect() };
    let mut globs = m
        .rules()
        .iter()
        .filter(|r| r.match_type == MatchType::Glob)
        .filter(takes);
    let glob = if m.defaults().glob_disable_ordering {
        globs.max_by(|a, b| {
            specificity(a)
                .cmp(&specificity(b))
                .then(b.index.cmp(&a.index))
        })
    } else {
        globs.next()
    };
    glob.or_else(|| {
        m.rules()
            .iter()
            .filter(|r| r.match_type == MatchType::Regex)
            .find(takes)
    })
    .map(|r| r.index)
}

fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = [HELM, AIRFLOW, NO_ORDER, TYPED]
        .iter()
        .flat_map(|t| mapper(t).rules().to_vec())
        .flat_map(|r| r.pattern.split('.').map(str::to_owned).collect::<Vec<_>>())
        .filter(|c| c != "*" && !c.contains('\\') && !c.contains('('))
        .collect();
    words.extend(
        [
            "",
            "x",
            "operator_successes_Bash",
            "operator_failures_",
            "task_instance_created_X",
            "airflow_scheduler_heartbeat",
            "group__task",
            "noorder",
            "t",
        ]
        .map(str::to_owned),
    );
    words.sort();
    words.dedup();
    words
}

fn any_type() -> impl Strategy<Value = MetricType> {
    prop::sample::select(vec![
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Set,
        MetricType::Timer,
        MetricType::Histogram,
        MetricType::Distribution,
    ])
}

fn no_order_helm() -> String {
    HELM.replacen(
        "mappings:\n",
        "defaults:\n  glob_disable_ordering: true\nmappings:\n",
        1,
    )
}

/// The files the property runs over, compiled once.
static MAPPERS: std::sync::LazyLock<Vec<Mapper>> = std::sync::LazyLock::new(|| {
    [HELM, AIRFLOW, NO_ORDER, TYPED, no_order_helm().as_str()]
        .iter()
        .map(|t| mapper(t))
        .collect()
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// For every mapping file: the explained rule is the model's, the outcome
    /// is `map`'s, the skipped rules are exactly the earlier ones (plus, without
    /// ordering, later matching globs), and every reason holds.
    #[test]
    fn explain_agrees_with_map_and_the_model(
        comps in prop::collection::vec(prop::sample::select(vocabulary()), 1..7),
        ty in any_type(),
        file in 0usize..5,
    ) {
        let m = &MAPPERS[file];
        let name = comps.join(".");
        let e = m.explain(&name, ty, vec![]);
        prop_assert_eq!(&e.outcome, &m.map(&name, ty, vec![]));
        prop_assert_eq!(e.rule, model_choice(m, &name, ty));
        let upto = e.rule.unwrap_or(m.rule_count());
        let earlier: Vec<usize> = e.skipped.iter().map(|s| s.rule).filter(|&r| r < upto).collect();
        prop_assert_eq!(earlier, (0..upto).collect::<Vec<_>>());
        for s in &e.skipped {
            let r = &m.rules()[s.rule];
            let matches = rule_matches(r, &name);
            match s.reason {
                SkipReason::NoMatch => prop_assert!(!matches),
                SkipReason::MetricType { rule, .. } => {
                    prop_assert!(matches);
                    prop_assert_ne!(rule, type_filter(ty));
                }
                SkipReason::LessSpecific { winner } => {
                    prop_assert!(matches && m.defaults().glob_disable_ordering);
                    prop_assert_eq!(Some(winner), e.rule);
                }
                SkipReason::RegexAfterGlobs { winner } => {
                    prop_assert!(matches && r.match_type == MatchType::Regex);
                    prop_assert_eq!(m.rules()[winner].match_type, MatchType::Glob);
                }
                SkipReason::Unexplained => prop_assert!(false, "unexplained skip of {}", s.rule),
            }
        }
    }
}
