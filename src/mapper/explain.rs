//! Why a name maps the way it does: [`Mapper::explain`].
//!
//! The deciding rule and the outcome come from the very code [`Mapper::map`]
//! runs (`Mapper::select`, then the same expansion), so an explanation cannot
//! disagree with what ingest does. What is added here is why each earlier rule
//! did not decide: its pattern is matched alone against the name, its type
//! filter checked, and what remains is a glob that lost to a more specific one
//! (`glob_disable_ordering`) or a regex that lost to a glob (globs are tried
//! first). The tests check these reasons against a plain model of the rules.

use super::config::{MatchMetricType, Rule, Templates};
use super::{type_filter, Choice, MapOutcome, Mapper};
use crate::parser::MetricType;

/// What the mapper does with one name, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// Index of the rule that decided, or `None`: no rule matched and the name
    /// was escaped.
    pub rule: Option<usize>,
    /// What [`Mapper::map`] returns for the same input.
    pub outcome: MapOutcome,
    /// Every rule before the deciding one in file order (every rule when none
    /// decided), and with `glob_disable_ordering` every later glob that
    /// matches too, with the reason it did not decide.
    pub skipped: Vec<Skipped>,
}

/// A rule that did not decide a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Index of the rule.
    pub rule: usize,
    /// Why it did not decide.
    pub reason: SkipReason,
}

/// Why a rule did not decide a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// Its pattern does not match the name.
    NoMatch,
    /// Its pattern matches, but its `match_metric_type` is not the sample's.
    MetricType {
        /// The rule's `match_metric_type`.
        rule: MatchMetricType,
        /// The sample's type.
        sample: MetricType,
    },
    /// A glob that matches, but a more specific glob (the `winner`'s index)
    /// wins under `glob_disable_ordering`.
    LessSpecific {
        /// Index of the rule that won.
        winner: usize,
    },
    /// A regex that matches, but the glob `winner` matched too, and every glob
    /// is tried before any regex.
    RegexAfterGlobs {
        /// Index of the glob that won.
        winner: usize,
    },
    /// Matches and accepts the sample, yet did not win: never expected (the
    /// tests assert it does not occur); shown rather than hidden.
    Unexplained,
}

impl Mapper {
    /// Explain how `raw_name` (of type `ty`, with the labels decoded from its
    /// tags) maps: the deciding rule, the outcome ([`Mapper::map`]'s), and why
    /// each earlier rule did not decide.
    pub fn explain(
        &self,
        raw_name: &str,
        ty: MetricType,
        tags: Vec<(String, String)>,
    ) -> Explanation {
        let choice = self.select(raw_name, ty);
        let (rule, winner_is_glob) = match &choice {
            Choice::Glob { rule, .. } => (Some(*rule), true),
            Choice::Regex { rule, .. } => (Some(*rule), false),
            Choice::Unmapped => (None, false),
        };
        let upto = rule.unwrap_or(self.rules.len());
        let unordered = self.defaults.glob_disable_ordering && winner_is_glob;
        let skipped = self
            .rules
            .iter()
            .filter(|r| {
                r.index < upto
                    || (unordered
                        && r.index > upto
                        && matches!(r.templates, Templates::Glob { .. })
                        && rule_matches(r, raw_name))
            })
            .map(|r| Skipped {
                rule: r.index,
                reason: self.skip_reason(r, raw_name, ty, rule.filter(|_| winner_is_glob)),
            })
            .collect();
        Explanation {
            rule,
            outcome: self.outcome(choice, raw_name, tags),
            skipped,
        }
    }

    /// Why `r` did not decide `raw_name`; `glob_winner` is the deciding rule
    /// when it is a glob.
    fn skip_reason(
        &self,
        r: &Rule,
        raw_name: &str,
        ty: MetricType,
        glob_winner: Option<usize>,
    ) -> SkipReason {
        if !rule_matches(r, raw_name) {
            return SkipReason::NoMatch;
        }
        if let Some(want) = r.metric_type.filter(|t| *t != type_filter(ty)) {
            return SkipReason::MetricType {
                rule: want,
                sample: ty,
            };
        }
        match (&r.templates, glob_winner) {
            (Templates::Regex { .. }, Some(winner)) => SkipReason::RegexAfterGlobs { winner },
            (Templates::Glob { .. }, Some(winner)) if self.defaults.glob_disable_ordering => {
                SkipReason::LessSpecific { winner }
            }
            _ => SkipReason::Unexplained,
        }
    }
}

/// Whether `r`'s pattern alone matches `name`: a regex anywhere in it, a glob
/// component by component (`*` is any one component, an empty one too).
pub fn rule_matches(r: &Rule, name: &str) -> bool {
    match &r.templates {
        Templates::Regex { regex, .. } => regex.is_match(name),
        Templates::Glob { .. } => glob_matches(&r.pattern, name),
    }
}

/// Whether the glob `pattern` matches `name`, one component at a time.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut p = pattern.split('.');
    let mut n = name.split('.');
    loop {
        match (p.next(), n.next()) {
            (None, None) => return true,
            (Some(pc), Some(nc)) if pc == "*" || pc == nc => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests;
