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
/// Stops at the first damaged group (the error names its line). A group that
/// reads well but that the push rules refuse (a file written by a version
/// with looser rules) is skipped with a warning, and the others load.
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
            if let Err(e) = apply_parsed(store, &key, &families, true, push) {
                tracing::warn!(
                    line = head_line,
                    group = %key,
                    error = %e,
                    "push persistence: group skipped, the push rules refuse it"
                );
                // The refusal stamped a failure time, which made the group.
                store.delete_group(&key);
                continue;
            }
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
    let (tmp, mut f) = create_temp(&dir, &name)?;
    let result = (|| {
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

/// A new temporary file in `dir` for `name`: a name nobody can guess
/// (`.<name>.tmp.<pid>.<random>`), created exclusively (`O_EXCL`: it fails on
/// anything already there, a planted symlink included) and without following
/// links, readable by its owner only.
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::hash::{BuildHasher, Hasher};
    use std::os::unix::fs::OpenOptionsExt;
    let mut last = None;
    for _ in 0..8 {
        // Randomly keyed per process and per call: unpredictable names.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let tmp = dir.join(format!(".{name}.tmp.{}.{random:016x}", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

/// Move a damaged file aside as `<file>.corrupt` (or `.corrupt.1`, `.2`, ...,
/// the first free one): an earlier damaged copy is never overwritten. A hard
/// link then an unlink, so the move fails rather than replace anything.
fn move_aside(path: &Path) -> Option<PathBuf> {
    for i in 0..100u32 {
        let aside = match i {
            0 => PathBuf::from(format!("{}.corrupt", path.display())),
            n => PathBuf::from(format!("{}.corrupt.{n}", path.display())),
        };
        match std::fs::hard_link(path, &aside) {
            Ok(()) => return std::fs::remove_file(path).ok().map(|()| aside),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => return None,
        }
    }
    None
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
            let aside = move_aside(path);
            tracing::error!(
                file = %path.display(),
                moved_to = %aside.as_deref().unwrap_or(path).display(),
                moved = aside.is_some(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::group::GroupKey;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("promstatsd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn store_with_a_group() -> Store {
        let store = Store::default();
        let key = GroupKey::new("j", Vec::new()).unwrap();
        let parsed = body::parse("g 1\n").unwrap();
        apply_parsed(&store, &key, &parsed, true, 1000.0).unwrap();
        store
    }

    #[test]
    fn the_persistence_write_does_not_follow_a_planted_symlink() {
        let d = dir("persist-symlink");
        let state = d.join("state");
        let victim = d.join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        // The name the temporary file used to have, planted as a link.
        let planted = d.join(format!(".state.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        persist(&store_with_a_group(), &state).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        let meta = std::fs::symlink_metadata(&state).unwrap();
        assert!(meta.file_type().is_file(), "the state file is a link");
        assert!(std::fs::read_to_string(&state).unwrap().contains("g{"));
        assert!(std::fs::symlink_metadata(&planted)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn temporary_names_are_not_predictable() {
        let d = dir("persist-names");
        let (a, _) = create_temp(&d, "state").unwrap();
        let (b, _) = create_temp(&d, "state").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn a_second_damaged_file_keeps_the_first_corrupt_copy() {
        let d = dir("persist-corrupt");
        let state = d.join("state");
        std::fs::write(&state, "first damage\n").unwrap();
        load(&Store::default(), &state).unwrap();
        std::fs::write(&state, "second damage\n").unwrap();
        load(&Store::default(), &state).unwrap();
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert_eq!(read(&d.join("state.corrupt")), "first damage\n");
        assert_eq!(read(&d.join("state.corrupt.1")), "second damage\n");
        assert!(!state.exists());
    }
}
