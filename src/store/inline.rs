//! Short byte strings kept inside their owner.
//!
//! At a million series every heap allocation counts: a label string such as
//! `id="123456"` costs 11 bytes but takes a 32-byte allocator chunk plus the
//! 16-byte `Box<str>` that points to it. [`InlineBytes`] and [`InlineStr`] are 24
//! bytes (the size of a `Vec`'s header) and hold up to [`INLINE_CAP`] bytes in
//! place; longer contents go to the heap as before.

/// Most bytes held without a heap allocation.
pub const INLINE_CAP: usize = 22;

/// Bytes, inline when at most [`INLINE_CAP`] long.
#[derive(Clone, Debug)]
pub enum InlineBytes {
    /// Short contents, in place.
    Inline {
        /// How many of `bytes` are used.
        len: u8,
        /// The contents, then zeros.
        bytes: [u8; INLINE_CAP],
    },
    /// Longer contents.
    Heap(Box<[u8]>),
}

impl Default for InlineBytes {
    fn default() -> Self {
        Self::Inline {
            len: 0,
            bytes: [0; INLINE_CAP],
        }
    }
}

impl InlineBytes {
    /// The concatenation of `parts`.
    pub fn concat(parts: &[&[u8]]) -> Self {
        let n: usize = parts.iter().map(|p| p.len()).sum();
        if n <= INLINE_CAP {
            let mut bytes = [0; INLINE_CAP];
            let mut at = 0;
            for p in parts {
                if let Some(dst) = bytes.get_mut(at..at + p.len()) {
                    dst.copy_from_slice(p);
                }
                at += p.len();
            }
            Self::Inline {
                len: n as u8,
                bytes,
            }
        } else {
            Self::Heap(parts.concat().into_boxed_slice())
        }
    }

    /// The contents.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            Self::Heap(b) => b,
        }
    }
}

impl PartialEq for InlineBytes {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for InlineBytes {}

/// A string, inline when at most [`INLINE_CAP`] bytes long.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct InlineStr(InlineBytes);

impl InlineStr {
    /// The string.
    #[inline]
    pub fn as_str(&self) -> &str {
        // SAFETY: the field is private and every constructor (the `From` impls
        // and `Default`) stores the bytes of a whole `str`, so they are UTF-8.
        // Checking instead cost a 1,000,000-series scrape about 20 % (every
        // family name and label string is read per series).
        unsafe { std::str::from_utf8_unchecked(self.0.as_bytes()) }
    }

    /// The string's bytes (no UTF-8 check).
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl From<&str> for InlineStr {
    fn from(s: &str) -> Self {
        Self(InlineBytes::concat(&[s.as_bytes()]))
    }
}

impl From<String> for InlineStr {
    fn from(s: String) -> Self {
        if s.len() <= INLINE_CAP {
            Self::from(s.as_str())
        } else {
            Self(InlineBytes::Heap(s.into_bytes().into_boxed_slice()))
        }
    }
}

impl std::ops::Deref for InlineStr {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialOrd for InlineStr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InlineStr {
    /// The order of the strings (byte order is `str` order).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::fmt::Debug for InlineStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

impl std::fmt::Display for InlineStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.as_str().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_are_24_bytes() {
        assert_eq!(std::mem::size_of::<InlineBytes>(), 24);
        assert_eq!(std::mem::size_of::<InlineStr>(), 24);
    }

    #[test]
    fn contents_round_trip_on_both_sides_of_the_inline_limit() {
        for n in 0..=INLINE_CAP + 3 {
            let s: String = (0..n).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
            let inline = matches!(InlineStr::from(s.as_str()).0, InlineBytes::Inline { .. });
            assert_eq!(inline, n <= INLINE_CAP, "{n}");
            assert_eq!(InlineStr::from(s.as_str()).as_str(), s);
            assert_eq!(InlineStr::from(s.clone()).as_str(), s);
            let (a, b) = s.as_bytes().split_at(n / 3);
            assert_eq!(
                InlineBytes::concat(&[a, b, b"", b"x"]).as_bytes(),
                [a, b, b"x"].concat()
            );
        }
    }

    #[test]
    fn multibyte_text_survives_and_orders_like_str() {
        let words = ["é", "zz", "a=\"ü\"", "", "日本語のラベル値はとても長い"];
        for a in words {
            assert_eq!(InlineStr::from(a).as_str(), a);
            for b in words {
                assert_eq!(
                    InlineStr::from(a).cmp(&InlineStr::from(b)),
                    a.cmp(b),
                    "{a} {b}"
                );
            }
        }
    }
}
