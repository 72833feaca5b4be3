//! Pushed groups as push and store agree on them: a group's key, and the
//! families a push converts a body into and the store keeps.

use crate::vocab::{valid_label, MetricKind};
use base64::Engine as _;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The per-group gauge of the last successful change.
pub const PUSH_TIME: &str = "push_time_seconds";
/// The per-group gauge of the last failed change.
pub const PUSH_FAILURE_TIME: &str = "push_failure_time_seconds";
/// HELP of [`PUSH_TIME`].
pub const PUSH_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway succeeded.";
/// HELP of [`PUSH_FAILURE_TIME`].
pub const PUSH_FAILURE_TIME_HELP: &str =
    "Last Unix time when changing this group in the Pushgateway failed.";

/// A grouping key: `job` and the other grouping labels, sorted by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey(Vec<(String, String)>);

impl GroupKey {
    /// Build a key from the job and further labels; later duplicates win, as in
    /// the Pushgateway's URL handling. An empty `instance` is no instance.
    pub fn new(job: &str, labels: Vec<(String, String)>) -> Result<Self, String> {
        if job.is_empty() {
            return Err("job name is required".to_owned());
        }
        let mut map: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in labels {
            if !valid_label(&k) || k.starts_with("__") {
                return Err(format!("improper label name {k:?}"));
            }
            map.insert(k, v);
        }
        map.insert("job".to_owned(), job.to_owned());
        // Every sample of a group carries `instance=""` when its key has no
        // instance (`sample_labels`): an empty instance in the path names the
        // same group, not a second one whose samples would repeat the first's.
        if map.get("instance").is_some_and(String::is_empty) {
            map.remove("instance");
        }
        Ok(Self(map.into_iter().collect()))
    }

    /// The labels, sorted by name (`job` among them).
    pub fn labels(&self) -> &[(String, String)] {
        &self.0
    }

    /// The value of a grouping label.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The URL path below `/metrics` that names this group, every value base64
    /// encoded (so any value round-trips): `/job@base64/YWlyZmxvdw/...`.
    pub fn to_path(&self) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut out = String::new();
        let job = self.get("job").unwrap_or_default();
        out.push_str("/job@base64/");
        out.push_str(&b64.encode(job));
        for (k, v) in self.0.iter().filter(|(k, _)| k != "job") {
            out.push('/');
            out.push_str(k);
            out.push_str("@base64/");
            // An empty value encodes as `=`, which the Pushgateway's decoder accepts.
            if v.is_empty() {
                out.push('=');
            } else {
                out.push_str(&b64.encode(v));
            }
        }
        out
    }

    /// The labels every sample of the group carries: the key plus `instance=""`
    /// when the key has no instance.
    pub fn sample_labels(&self) -> Vec<(&str, &str)> {
        let mut l: Vec<(&str, &str)> = self.0.iter().map(|(k, v)| (&**k, &**v)).collect();
        if self.get("instance").is_none() {
            l.push(("instance", ""));
            l.sort_unstable();
        }
        l
    }
}

impl std::fmt::Display for GroupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

/// One pushed sample, its labels already merged with the group's and rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct PushedSample {
    /// Full sample name (`x`, `x_sum`, `x_bucket`, ...).
    pub name: Box<str>,
    /// Rendered labels, sorted by name and escaped: `instance="",job="a"`.
    pub labels: Box<str>,
    /// The value.
    pub value: f64,
}

/// One pushed family of one group.
#[derive(Clone, Debug, PartialEq)]
pub struct PushedFamily {
    /// Family name.
    pub name: Box<str>,
    /// The type (`Untyped` for a family without one).
    pub kind: MetricKind,
    /// HELP text as pushed.
    pub help: Option<Box<str>>,
    /// Samples in the order pushed (a histogram's buckets stay in `le` order).
    pub samples: Vec<PushedSample>,
}

/// A converted family and, for histograms and summaries, the rendered label
/// sets of its series (`None`: every sample is a series, its labels are those).
pub type Converted = (Arc<PushedFamily>, Option<Vec<Box<str>>>);
