//! `$1`/`${1}` templates in mapping names and label values.
//!
//! Glob templates follow statsd_exporter's glob formatter: a reference is `$`,
//! an optional `{`, a run of `[A-Za-z0-9_$]`, an optional `}`; the run must be a
//! capture number from 1 to the number of `*`s, otherwise the whole reference
//! expands to nothing (so `$1_foo` is empty; write `${1}_foo`). Regex templates
//! follow Go's `Regexp.Expand` (the same rules as the `regex` crate's
//! `Captures::expand`): `$name` takes the longest run of `[A-Za-z0-9_]`, `$0` is
//! the whole match, `$$` is a literal `$`.

/// A parsed glob template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobTemplate {
    pieces: Vec<Piece>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    /// 0-based capture index.
    Capture(usize),
}

impl GlobTemplate {
    /// Parse `text` for a glob with `captures` wildcards.
    pub fn parse(text: &str, captures: usize) -> Self {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let b = text.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] != b'$' {
                let ch_len = text[i..].chars().next().map_or(1, char::len_utf8);
                lit.push_str(&text[i..i + ch_len]);
                i += ch_len;
                continue;
            }
            let mut j = i + 1;
            if b.get(j) == Some(&b'{') {
                j += 1;
            }
            let start = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_' || b[j] == b'$') {
                j += 1;
            }
            if j == start {
                // Not a reference: a lone `$` (or `${`) stays as text.
                lit.push_str(&text[i..j]);
                i = j;
                continue;
            }
            let token = &text[start..j];
            if b.get(j) == Some(&b'}') {
                j += 1;
            }
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            if let Ok(n) = token.parse::<usize>() {
                if (1..=captures).contains(&n) {
                    pieces.push(Piece::Capture(n - 1));
                }
            }
            i = j;
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Self { pieces }
    }

    /// Expand with the components the wildcards matched.
    pub fn expand(&self, captures: &[&str], out: &mut String) {
        for p in &self.pieces {
            match p {
                Piece::Lit(s) => out.push_str(s),
                Piece::Capture(i) => out.push_str(captures.get(*i).copied().unwrap_or("")),
            }
        }
    }

    /// True when the template has no reference (expands to itself).
    pub fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::GlobTemplate;

    fn ex(t: &str, caps: &[&str]) -> String {
        let mut out = String::new();
        GlobTemplate::parse(t, caps.len()).expand(caps, &mut out);
        out
    }

    #[test]
    fn glob_template_table() {
        let caps = ["a", "b", "c"];
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$1", "a"),
            ("${1}", "a"),
            ("${1}_foo", "a_foo"),
            ("$1_foo", ""),
            ("$1$2", ""),
            ("$1-$2", "a-b"),
            ("$1.$2", "a.b"),
            ("x_${3}_y", "x_c_y"),
            ("$4", ""),
            ("$0", ""),
            ("cost $", "cost $"),
            ("a$", "a$"),
            ("é$1", "éa"),
        ];
        for (t, want) in cases {
            assert_eq!(ex(t, &caps), *want, "template {t:?}");
        }
    }

    #[test]
    fn literal_templates_are_recognised() {
        assert_eq!(GlobTemplate::parse("abc", 2).literal(), Some("abc"));
        assert_eq!(GlobTemplate::parse("a$1", 2).literal(), None);
    }
}
