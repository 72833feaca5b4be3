//! Glob matching compiled into a trie over dot-separated components.
//!
//! Every glob rule is one path from the root: a literal component is an edge
//! labelled with it, `*` is the wildcard edge, which matches exactly one component
//! (an empty one too, as in statsd_exporter). A name is matched by walking its
//! components down the trie, following the literal edge and the wildcard edge,
//! so the cost depends on the name's length and the trie's shape, not on the
//! number of rules.
//!
//! Order: by default the rule that comes first in the file wins among all that
//! match; with `glob_disable_ordering` the most specific wins (at each level a
//! literal component beats `*`), as statsd_exporter's FSM.

use std::collections::HashMap;

#[derive(Clone, Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, usize>,
    wildcard: Option<usize>,
    /// Rules ending here, in file order.
    rules: Vec<usize>,
}

/// A compiled set of glob patterns.
#[derive(Clone, Debug)]
pub struct GlobSet {
    nodes: Vec<Node>,
    ordered: bool,
}

/// The outcome of a match: the rule and the components its `*`s matched.
#[derive(Debug, PartialEq, Eq)]
pub struct GlobMatch<'a> {
    /// Index of the rule (as given to [`GlobSet::insert`]).
    pub rule: usize,
    /// Components matched by each `*`, left to right.
    pub captures: Vec<&'a str>,
}

impl GlobSet {
    /// An empty set; `ordered` is the opposite of `glob_disable_ordering`.
    pub fn new(ordered: bool) -> Self {
        Self {
            nodes: vec![Node::default()],
            ordered,
        }
    }

    /// Add a pattern (components already validated) for rule `rule`. Rules must be
    /// inserted in file order.
    pub fn insert(&mut self, pattern: &str, rule: usize) {
        let mut at = 0;
        for comp in pattern.split('.') {
            let next = if comp == "*" {
                self.nodes[at].wildcard
            } else {
                self.nodes[at].literal.get(comp).copied()
            };
            at = match next {
                Some(n) => n,
                None => {
                    let n = self.nodes.len();
                    self.nodes.push(Node::default());
                    if comp == "*" {
                        self.nodes[at].wildcard = Some(n);
                    } else {
                        self.nodes[at].literal.insert(comp.into(), n);
                    }
                    n
                }
            };
        }
        self.nodes[at].rules.push(rule);
    }

    /// Match `name`; `accept` filters rules (e.g. by metric type).
    pub fn find<'a>(&self, name: &'a str, accept: impl Fn(usize) -> bool) -> Option<GlobMatch<'a>> {
        let comps: Vec<&'a str> = name.split('.').collect();
        let mut caps = Vec::with_capacity(comps.len());
        let mut best: Option<GlobMatch<'a>> = None;
        self.walk(0, &comps, &mut caps, &accept, &mut best);
        best
    }

    /// Depth-first walk, literal edge first. Returns true to stop the search.
    fn walk<'a>(
        &self,
        at: usize,
        rest: &[&'a str],
        caps: &mut Vec<&'a str>,
        accept: &impl Fn(usize) -> bool,
        best: &mut Option<GlobMatch<'a>>,
    ) -> bool {
        let Some(node) = self.nodes.get(at) else {
            return false;
        };
        let Some((first, tail)) = rest.split_first() else {
            let Some(&rule) = node.rules.iter().find(|r| accept(**r)) else {
                return false;
            };
            if best.as_ref().is_none_or(|b| rule < b.rule) {
                *best = Some(GlobMatch {
                    rule,
                    captures: caps.clone(),
                });
            }
            // Without ordering, the first (most specific) match wins.
            return !self.ordered;
        };
        if let Some(&next) = node.literal.get(*first) {
            if self.walk(next, tail, caps, accept, best) {
                return true;
            }
        }
        if let Some(next) = node.wildcard {
            caps.push(first);
            let stop = self.walk(next, tail, caps, accept, best);
            caps.pop();
            if stop {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ordered: bool, patterns: &[&str]) -> GlobSet {
        let mut s = GlobSet::new(ordered);
        for (i, p) in patterns.iter().enumerate() {
            s.insert(p, i);
        }
        s
    }

    fn m(s: &GlobSet, name: &str) -> Option<(usize, Vec<String>)> {
        s.find(name, |_| true)
            .map(|g| (g.rule, g.captures.iter().map(|c| c.to_string()).collect()))
    }

    #[test]
    fn star_is_exactly_one_component() {
        let s = set(true, &["a.*.c"]);
        assert_eq!(m(&s, "a.b.c"), Some((0, vec!["b".into()])));
        assert_eq!(m(&s, "a.b.x.c"), None);
        assert_eq!(m(&s, "a.c"), None);
        assert_eq!(m(&s, "a..c"), Some((0, vec![String::new()])));
    }

    #[test]
    fn first_in_file_order_wins_by_default() {
        let s = set(true, &["order.*.*", "order.*.bbb"]);
        assert_eq!(m(&s, "order.good.bbb").map(|x| x.0), Some(0));
    }

    #[test]
    fn most_specific_wins_without_ordering() {
        let s = set(false, &["noorder.*.*", "noorder.*.bbb", "noorder.ccc.bbb"]);
        assert_eq!(m(&s, "noorder.good.bbb").map(|x| x.0), Some(1));
        assert_eq!(m(&s, "noorder.ccc.bbb").map(|x| x.0), Some(2));
        assert_eq!(m(&s, "noorder.ccc.x").map(|x| x.0), Some(0));
    }

    #[test]
    fn backtracking_keeps_the_right_captures() {
        let s = set(true, &["*.dummy.*", "full.name.*"]);
        assert_eq!(
            m(&s, "full.name.anothertest"),
            Some((1, vec!["anothertest".into()]))
        );
        assert_eq!(m(&s, "x.dummy.y"), Some((0, vec!["x".into(), "y".into()])));
    }

    #[test]
    fn a_prefix_rule_after_a_longer_one_still_matches() {
        let s = set(true, &["a.b.c", "a.b"]);
        assert_eq!(m(&s, "a.b").map(|x| x.0), Some(1));
        assert_eq!(m(&s, "a.b.c").map(|x| x.0), Some(0));
    }

    #[test]
    fn filter_skips_rules() {
        let s = set(true, &["t.*", "t.*"]);
        assert_eq!(s.find("t.x", |r| r == 1).map(|g| g.rule), Some(1));
        assert_eq!(s.find("t.x", |_| false), None);
    }
}
