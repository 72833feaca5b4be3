//! Protobuf's wire format, the pieces every hand-written encoder needs: wire
//! types, base-128 varints and field keys. The protobuf exposition and the
//! remote-write batcher both write with these.

/// Wire type of a varint field.
pub const VARINT: u8 = 0;
/// Wire type of an 8-byte field (`double`, `fixed64`).
pub const FIXED64: u8 = 1;
/// Wire type of a length-delimited field (strings, messages, packed lists).
pub const LEN: u8 = 2;

/// Append `v` as a base-128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`put_varint`] writes for `v`: one per 7 bits, at least one.
pub fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Append the key of `field` with wire type `wire` (one byte for fields 1..=15).
pub fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_base_128_and_their_length_is_known() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0]),
            (1, &[1]),
            (127, &[0x7f]),
            (128, &[0x80, 1]),
            (300, &[0xac, 2]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
            ),
        ];
        for (v, want) in cases {
            let mut out = Vec::new();
            put_varint(&mut out, *v);
            assert_eq!(out, *want, "{v}");
            assert_eq!(varint_len(*v), want.len(), "{v}");
        }
    }

    #[test]
    fn keys_join_field_and_wire_type() {
        let cases: &[(u32, u8, &[u8])] = &[
            (1, LEN, &[0x0a]),
            (15, VARINT, &[0x78]),
            (16, FIXED64, &[0x81, 1]),
        ];
        for (field, wire, want) in cases {
            let mut out = Vec::new();
            put_key(&mut out, *field, *wire);
            assert_eq!(out, *want, "{field}");
        }
    }
}
