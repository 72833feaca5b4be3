//! Push paths: `/metrics/job/<job>{/<label>/<value>}` into a grouping key,
//! percent escapes and `@base64` values decoded as the Pushgateway decodes them.

use crate::model::group::GroupKey;
use base64::Engine as _;

/// Decode a path component's `%XX` escapes.
fn percent_decode(s: &str) -> Result<String, String> {
    crate::vocab::percent_decode(s)
        .ok_or_else(|| format!("invalid percent-encoding in {s:?}, or not UTF-8 once decoded"))
}

/// Decode a URL-safe base64 value; trailing `=` padding is ignored (so `=` alone
/// is the empty string), as the Pushgateway does.
fn decode_base64(s: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|e| format!("invalid base64 {s:?}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("base64 value {s:?} is not UTF-8"))
}

/// Parse the grouping key from a request path, `/metrics/job/<job>{/<l>/<v>}`.
/// `None` if the path is not a push path at all.
pub fn parse_group_path(path: &str) -> Option<Result<GroupKey, String>> {
    let rest = path.strip_prefix("/metrics/")?;
    let mut parts = rest.split('/');
    let first = parts.next()?;
    if first != "job" && first != "job@base64" {
        return None;
    }
    Some((|| {
        let job_raw = parts.next().ok_or("job name is required")?;
        let job = percent_decode(job_raw)?;
        let job = if first == "job@base64" {
            decode_base64(&job)?
        } else {
            job
        };
        let mut rest: Vec<&str> = parts.collect();
        // `/metrics/job/a/`: a trailing slash and no labels, as the Pushgateway allows.
        if rest == [""] {
            rest.clear();
        }
        if rest.len() % 2 != 0 {
            return Err(format!(
                "odd number of components in the label path {:?}",
                rest.join("/")
            ));
        }
        let mut labels = Vec::with_capacity(rest.len() / 2);
        for pair in rest.chunks(2) {
            let name = percent_decode(pair[0])?;
            let value = percent_decode(pair[1])?;
            let (name, value) = match name.strip_suffix("@base64") {
                Some(n) => (n.to_owned(), decode_base64(&value)?),
                None => (name, value),
            };
            if name == "job" {
                return Err("the job label must come first in the path".to_owned());
            }
            labels.push((name, value));
        }
        GroupKey::new(&job, labels)
    })())
}
