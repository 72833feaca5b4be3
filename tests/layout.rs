//! The layering of `src/`, checked: every top-level module says in its `//!`
//! docs which modules it may import (a line `May import: a, b.` or `May import:
//! nothing ...`), and this test reads every source file, collects the
//! `crate::` paths outside `#[cfg(test)]` items, and fails naming any edge the
//! importing module did not declare. The declared graph itself must be acyclic,
//! so the modules form one-way layers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Top-level modules: `src/x.rs` or `src/x/mod.rs`, except the crate roots.
fn modules() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(src()).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        if path.is_dir() {
            if path.join("mod.rs").exists() {
                out.insert(name, path.join("mod.rs"));
            }
        } else if path.extension().is_some_and(|e| e == "rs") && !matches!(&*name, "lib" | "main") {
            out.insert(name, path);
        }
    }
    out
}

/// Every `.rs` file of a module: its root file and, for a directory module,
/// everything under the directory.
fn files_of(root: &Path) -> Vec<PathBuf> {
    if root.file_name().is_some_and(|n| n == "mod.rs") {
        let mut out = Vec::new();
        let mut stack = vec![root.parent().expect("a module directory").to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).expect("a readable module directory") {
                let p = entry.expect("a directory entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    out.push(p);
                }
            }
        }
        out
    } else {
        vec![root.to_path_buf()]
    }
}

/// The modules a root file's `//!` docs allow: `May import: a, b.`
fn declared(root: &Path, known: &BTreeSet<String>) -> Result<BTreeSet<String>, String> {
    let text = fs::read_to_string(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let docs: String = text
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| l.trim_start_matches("//!").trim())
        .collect::<Vec<_>>()
        .join(" ");
    let Some(rest) = docs.split("May import:").nth(1) else {
        return Err(format!(
            "{}: no `May import:` line in its //! docs",
            root.display()
        ));
    };
    let list = rest.split('.').next().unwrap_or_default();
    if list.trim_start().starts_with("nothing") {
        return Ok(BTreeSet::new());
    }
    let mut out = BTreeSet::new();
    for word in list.split(',').map(str::trim) {
        if !known.contains(word) {
            return Err(format!(
                "{}: `May import:` names {word:?}, which is no top-level module",
                root.display()
            ));
        }
        out.insert(word.to_owned());
    }
    Ok(out)
}

/// The source without comments, string and char literals, and `#[cfg(test)]`
/// items (their braces matched), so only the code the library compiles
/// remains.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |e| e + 2);
        } else if let Some(item) = rest.strip_prefix("#[cfg(test)]") {
            i += skip_item(item) + "#[cfg(test)]".len();
        } else if rest.starts_with("r#\"") {
            i += rest.find("\"#").map_or(rest.len(), |e| e + 2);
        } else if rest.starts_with('"') {
            i += skip_string(rest);
        } else if rest.starts_with("b'") || rest.starts_with('\'') {
            i += skip_char(rest);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Bytes of a string literal starting at `s[0] == '"'`.
fn skip_string(s: &str) -> usize {
    let b = s.as_bytes();
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    b.len()
}

/// Bytes of a char literal (or a lifetime, which is left as one byte).
fn skip_char(s: &str) -> usize {
    let start = usize::from(s.starts_with('b'));
    let body = &s[start + 1..];
    if let Some(rest) = body.strip_prefix('\\') {
        return start + 2 + rest.find('\'').map_or(rest.len(), |e| e + 1);
    }
    match body.chars().next() {
        Some(c) if body[c.len_utf8()..].starts_with('\'') => start + 2 + c.len_utf8(),
        _ => start + 1,
    }
}

/// Bytes of the item after an attribute: up to its `;` or its matched braces.
fn skip_item(s: &str) -> usize {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        let rest = &s[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
            continue;
        }
        match b[i] {
            b'"' => {
                i += skip_string(rest);
                continue;
            }
            b'\'' => {
                i += skip_char(rest);
                continue;
            }
            b'{' => depth += 1,
            b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            b';' if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The identifier at the start of `s`.
fn first_word(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// `s` cut at its commas outside braces.
fn top_level_parts(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut parts) = (0usize, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// The top-level modules a piece of code names through `crate::`.
fn imports(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first word of each path.
            Some(group) => {
                let mut depth = 0usize;
                let end = group
                    .char_indices()
                    .find(|&(_, c)| match c {
                        '{' => {
                            depth += 1;
                            false
                        }
                        '}' if depth == 0 => true,
                        '}' => {
                            depth -= 1;
                            false
                        }
                        _ => false,
                    })
                    .map_or(group.len(), |(i, _)| i);
                out.extend(top_level_parts(&group[..end]).into_iter().map(first_word));
            }
            None => {
                out.insert(first_word(rest));
            }
        }
    }
    out.retain(|m| known.contains(m));
    out
}

struct Graph {
    /// Module -> modules its `//!` says it may import.
    declared: BTreeMap<String, BTreeSet<String>>,
    /// Module -> (imported module, file that imports it).
    actual: BTreeMap<String, Vec<(String, PathBuf)>>,
}

fn graph() -> Result<Graph, String> {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut declared_edges = BTreeMap::new();
    let mut actual = BTreeMap::new();
    for (name, root) in &mods {
        declared_edges.insert(name.clone(), declared(root, &known)?);
        let mut edges = Vec::new();
        for file in files_of(root) {
            let text = fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            for m in imports(&code_only(&text), &known) {
                if m != *name {
                    edges.push((m, file.clone()));
                }
            }
        }
        actual.insert(name.clone(), edges);
    }
    Ok(Graph {
        declared: declared_edges,
        actual,
    })
}

/// Imports that the importing module's docs do not allow, as messages.
fn undeclared(g: &Graph) -> Vec<String> {
    let mut out = Vec::new();
    for (from, edges) in &g.actual {
        for (to, file) in edges {
            if !g.declared.get(from).is_some_and(|d| d.contains(to)) {
                out.push(format!(
                    "{from} -> {to} ({}): not in {from}'s `May import:` list",
                    file.strip_prefix(src()).unwrap_or(file).display()
                ));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A cycle in the declared graph, if any, as `a -> b -> a`.
fn cycle(declared: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<String> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| *p == n).unwrap_or(0);
                let mut c: Vec<&str> = path[start..].to_vec();
                c.push(n);
                return Some(c.join(" -> "));
            }
            _ => {}
        }
        state.insert(n, 1);
        path.push(n);
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(n, 2);
        None
    }
    let mut state = BTreeMap::new();
    declared
        .keys()
        .find_map(|n| visit(n, declared, &mut state, &mut Vec::new()))
}

#[test]
fn every_import_is_declared_by_the_importing_module() {
    let g = graph().unwrap_or_else(|e| panic!("{e}"));
    let bad = undeclared(&g);
    assert!(
        bad.is_empty(),
        "upward or undeclared imports:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_declared_layers_have_no_cycle() {
    let g = graph().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cycle(&g.declared), None);
}

#[test]
fn the_checker_sees_each_way_of_naming_a_module() {
    let known: BTreeSet<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
    let cases: &[(&str, &[&str])] = &[
        ("use crate::a::X;", &["a"]),
        ("use crate::{a, b::Y};", &["a", "b"]),
        ("use crate::{a::{X, Y}, c};", &["a", "c"]),
        ("let x = crate::d::f();", &["d"]),
        ("// use crate::a::X;\nfn f() {}", &[]),
        ("let s = \"crate::a::X\";", &[]),
        (
            "#[cfg(test)]\nmod tests { use crate::b::Z; }\nuse crate::c::W;",
            &["c"],
        ),
        ("#[cfg(test)]\nuse crate::b::Z;\nuse crate::c::W;", &["c"]),
        ("let c = '{'; use crate::a::X;", &["a"]),
    ];
    for (code, want) in cases {
        let got: Vec<String> = imports(&code_only(code), &known).into_iter().collect();
        assert_eq!(got, *want, "{code}");
    }
}

#[test]
fn a_cycle_is_named() {
    let g: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(cycle(&g).as_deref(), Some("a -> b -> c -> a"));
}
