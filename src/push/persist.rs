//! Persistence (`--push.persistence.file`): every group written to one text
//! file, atomically (a temporary file in the same directory, fsynced, then
//! renamed), when the groups changed and at shutdown; read back at start.

use super::path::parse_group_path;
use super::{apply_parsed, body, PushStats};
use crate::model::group::PushedFamily;
use crate::store::Store;
use crate::vocab::write_float;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const FILE_HEADER: &str = "# promstatsd push persistence v1\n";
const GROUP_MARK: &str = "#@group ";

fn write_family(out: &mut Vec<u8>, f: &PushedFamily) {
    if let Some(h) = &f.help {
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(f.name.as_bytes());
        out.push(b' ');
        for c in h.bytes() {
            match c {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                c => out.push(c),
            }
        }
        out.push(b'\n');
    }
    out.extend_from_slice(b"# TYPE ");
    out.extend_from_slice(f.name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(f.kind.type_word().as_bytes());
    out.push(b'\n');
    for s in &f.samples {
        out.extend_from_slice(s.name.as_bytes());
        if !s.labels.is_empty() {
            out.push(b'{');
            out.extend_from_slice(s.labels.as_bytes());
            out.push(b'}');
        }
        out.push(b' ');
        write_float(out, s.value);
        out.push(b'\n');
    }
}

/// Every group in the persistence format: a header line, then per group a
/// `#@group <path> <push time> <failure time>` line and its families in the
/// text format (labels already merged, so re-applying them is idempotent).
pub fn serialize(store: &Store) -> Vec<u8> {
    let mut out = Vec::from(FILE_HEADER.as_bytes());
    for g in store.pushed().export() {
        out.extend_from_slice(GROUP_MARK.as_bytes());
        out.extend_from_slice(g.key.to_path().as_bytes());
        out.push(b' ');
        write_float(&mut out, g.push_time);
        out.push(b' ');
        write_float(&mut out, g.failure_time);
        out.push(b'\n');
        for f in &g.families {
            write_family(&mut out, f);
        }
    }
    out
}

/// Restore groups from the persistence format; returns how many were loaded.
/// Stops at the first bad group (the error names its line).
pub fn restore(store: &Store, text: &str) -> Result<usize, String> {
    let body = text
        .strip_prefix(FILE_HEADER)
        .ok_or("not a promstatsd push persistence file (bad first line)")?;
    let mut loaded = 0;
    let mut line_no = 1;
    let mut chunks = body.split_inclusive('\n').peekable();
    while let Some(head) = chunks.next() {
        line_no += 1;
        let head_line = line_no;
        let at = |e: String| format!("line {head_line}: {e}");
        let header = head
            .trim_end()
            .strip_prefix(GROUP_MARK)
            .ok_or_else(|| at("expected a #@group line".to_owned()))?;
        let mut fields = header.split(' ');
        let (path, push, fail) = (
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
            fields.next().unwrap_or(""),
        );
        let key = parse_group_path(&format!("/metrics{path}"))
            .ok_or_else(|| at(format!("bad group path {path:?}")))?
            .map_err(at)?;
        let time = |s: &str| s.parse::<f64>().map_err(|_| at(format!("bad time {s:?}")));
        let (push, fail) = (time(push)?, time(fail)?);
        let mut group_text = String::new();
        while let Some(l) = chunks.next_if(|l| !l.starts_with(GROUP_MARK)) {
            line_no += 1;
            group_text.push_str(l);
        }
        let families = body::parse(&group_text)
            .map_err(|e| format!("group starting at line {head_line}: {e}"))?;
        if !families.is_empty() || push > 0.0 {
            apply_parsed(store, &key, &families, true, push)
                .map_err(|e| at(format!("group {key}: {e}")))?;
        }
        if fail > 0.0 {
            store.set_push_failure_time(&key, fail);
        }
        store.set_push_time(&key, push);
        loaded += 1;
    }
    Ok(loaded)
}

/// Write the groups to `path` atomically: a temporary file beside it, fsynced,
/// renamed over it, and the directory fsynced.
pub fn persist(store: &Store, path: &Path) -> std::io::Result<()> {
    let data = serialize(store);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "push".to_owned());
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Load the persistence file at start. A missing file is an empty start; a
/// damaged one is moved aside (`<file>.corrupt`) so the next write does not
/// destroy it, and the groups read before the damage are kept.
pub fn load(store: &Store, path: &Path) -> Result<usize, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let restored = match std::str::from_utf8(&bytes) {
        Ok(text) => restore(store, text),
        Err(e) => Err(format!("not UTF-8 text (at byte {})", e.valid_up_to())),
    };
    match restored {
        Ok(n) => Ok(n),
        Err(e) => {
            let aside = PathBuf::from(format!("{}.corrupt", path.display()));
            let moved = std::fs::rename(path, &aside);
            tracing::error!(
                file = %path.display(),
                moved_to = %aside.display(),
                moved = moved.is_ok(),
                error = %e,
                "push persistence file is damaged; groups after the damage are lost"
            );
            Ok(store.pushed().group_count())
        }
    }
}

/// Writes the push groups to their persistence file when they changed, at most
/// once per interval, and at shutdown.
pub struct Persister {
    file: std::path::PathBuf,
    interval: Duration,
    written: u64,
    last: std::time::Instant,
}

impl Persister {
    /// A persister for `file`, written at most once per `interval`.
    pub fn new(file: std::path::PathBuf, interval: Duration, store: &Store) -> Self {
        Self {
            file,
            interval,
            written: store.pushed().changes(),
            last: std::time::Instant::now(),
        }
    }

    /// Write the groups if they changed and the interval has passed (or
    /// `last_time`, at shutdown).
    pub fn tick(&mut self, store: &Store, last_time: bool) {
        let changes = store.pushed().changes();
        if changes == self.written || (!last_time && self.last.elapsed() < self.interval) {
            return;
        }
        self.last = std::time::Instant::now();
        match persist(store, &self.file) {
            Ok(()) => {
                self.written = changes;
                tracing::debug!(file = %self.file.display(), "push groups written");
            }
            Err(e) => {
                store.metrics().shared::<PushStats>().persist_error();
                tracing::error!(file = %self.file.display(), error = %e, "cannot write the push persistence file; will retry");
            }
        }
    }
}
