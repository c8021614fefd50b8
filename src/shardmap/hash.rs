//! PostgreSQL 15's own hash-partition function (lookup3 + seed), bit-for-bit, so shards agree with `PARTITION BY HASH`.

/// src/include/catalog/partition.h: every hash partition support function is called with this seed.
pub const HASH_PARTITION_SEED: u64 = 0x7A5B_2236_7996_DCFD;

// Initial state shared by every lookup3 entry point in src/common/hashfn.c.
const JENKINS_INIT: u32 = 0x9e37_79b9_u32.wrapping_add(3_923_095);

/// `mix()` from src/common/hashfn.c (reversible mixing of three 32-bit words).
#[inline]
#[rustfmt::skip]
fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *a = a.wrapping_sub(*c); *a ^= c.rotate_left(4); *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a); *b ^= a.rotate_left(6); *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b); *c ^= b.rotate_left(8); *b = b.wrapping_add(*a);
    *a = a.wrapping_sub(*c); *a ^= c.rotate_left(16); *c = c.wrapping_add(*b);
    *b = b.wrapping_sub(*a); *b ^= a.rotate_left(19); *a = a.wrapping_add(*c);
    *c = c.wrapping_sub(*b); *c ^= b.rotate_left(4); *b = b.wrapping_add(*a);
}

/// `final()` from src/common/hashfn.c (irreversible avalanche into c, and b).
#[inline]
#[rustfmt::skip]
fn final_mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    *c ^= *b; *c = c.wrapping_sub(b.rotate_left(14));
    *a ^= *c; *a = a.wrapping_sub(c.rotate_left(11));
    *b ^= *a; *b = b.wrapping_sub(a.rotate_left(25));
    *c ^= *b; *c = c.wrapping_sub(b.rotate_left(16));
    *a ^= *c; *a = a.wrapping_sub(c.rotate_left(4));
    *b ^= *a; *b = b.wrapping_sub(a.rotate_left(14));
    *c ^= *b; *c = c.wrapping_sub(b.rotate_left(24));
}

/// hashfn.c perturbs the state with the seed as if it were a 12-byte chunk (seed hi, seed lo, 0),
/// and only when the seed is non-zero.
#[inline]
fn seed_state(a: &mut u32, b: &mut u32, c: &mut u32, seed: u64) {
    if seed != 0 {
        *a = a.wrapping_add((seed >> 32) as u32);
        *b = b.wrapping_add(seed as u32);
        mix(a, b, c);
    }
}

/// Little-endian 32-bit word. hashfn.c fetches whole words when the key is aligned and
/// assembles them byte by byte otherwise; on little-endian x86_64 both give this value.
#[inline]
fn le_word(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .enumerate()
        .fold(0u32, |w, (i, &x)| w | (u32::from(x) << (8 * i)))
}

/// `hash_bytes_extended()` from src/common/hashfn.c (PostgreSQL's `hash_any_extended`).
/// Returns `((uint64) b << 32) | c`.
pub fn hash_bytes_extended(k: &[u8], seed: u64) -> u64 {
    // C stores `int keylen` into a uint32, so the length wraps modulo 2^32 like this cast.
    let init = JENKINS_INIT.wrapping_add(k.len() as u32);
    let (mut a, mut b, mut c) = (init, init, init);
    seed_state(&mut a, &mut b, &mut c, seed);

    let mut chunks = k.chunks_exact(12);
    for ch in &mut chunks {
        a = a.wrapping_add(le_word(&ch[0..4]));
        b = b.wrapping_add(le_word(&ch[4..8]));
        c = c.wrapping_add(le_word(&ch[8..12]));
        mix(&mut a, &mut b, &mut c);
    }
    // Last 0..=11 bytes: a gets bytes 0-3, b 4-7, c 8-10 shifted up one byte, because
    // "the lowest byte of c is reserved for the length" (hashfn.c).
    for (i, &x) in chunks.remainder().iter().enumerate() {
        let x = u32::from(x);
        match i {
            0..=3 => a = a.wrapping_add(x << (8 * i)),
            4..=7 => b = b.wrapping_add(x << (8 * (i - 4))),
            _ => c = c.wrapping_add(x << (8 * (i - 7))),
        }
    }
    final_mix(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

/// `hash_bytes_uint32_extended()` from src/common/hashfn.c (`hash_uint32_extended`).
pub fn hash_uint32_extended(k: u32, seed: u64) -> u64 {
    let init = JENKINS_INIT.wrapping_add(4);
    let (mut a, mut b, mut c) = (init, init, init);
    seed_state(&mut a, &mut b, &mut c, seed);
    a = a.wrapping_add(k);
    final_mix(&mut a, &mut b, &mut c);
    (u64::from(b) << 32) | u64::from(c)
}

/// `hash_combine64()` from src/include/common/hashfn.h.
pub fn hash_combine64(a: u64, b: u64) -> u64 {
    a ^ b
        .wrapping_add(0x49a0_f4dd_15e5_a8e3)
        .wrapping_add(a << 54)
        .wrapping_add(a >> 7)
}

/// hashint4extended (hashfunc.c). int2 callers widen with `i32::from` first, as hashint2extended does.
pub fn hash_int4(v: i32) -> u64 {
    hash_uint32_extended(v as u32, HASH_PARTITION_SEED)
}

/// hashint8extended (hashfunc.c): folds the high half into the low one, complementing it for
/// negatives so that int8 values equal to some int4 hash the same as that int4 (cross-type hashing).
pub fn hash_int8(v: i64) -> u64 {
    let lo = v as u32;
    let hi = (v >> 32) as u32;
    hash_uint32_extended(lo ^ if v >= 0 { hi } else { !hi }, HASH_PARTITION_SEED)
}

/// hashtextextended (hashfunc.c) under a deterministic collation: plain bytes of the string.
/// Nondeterministic (ICU) collations hash a sort key instead and are not supported here.
pub fn hash_text(v: &str) -> u64 {
    hash_bytes_extended(v.as_bytes(), HASH_PARTITION_SEED)
}

/// uuid_hash_extended (utils/adt/uuid.c): the 16 raw bytes in network order.
pub fn hash_uuid(v: &[u8; 16]) -> u64 {
    hash_bytes_extended(v, HASH_PARTITION_SEED)
}

/// date_hash_extended (utils/adt/date.c) is hashint4extended on the day number since 2000-01-01.
pub fn hash_date(days_since_2000: i32) -> u64 {
    hash_int4(days_since_2000)
}

/// timestamp_hash_extended (utils/adt/timestamp.c) is hashint8extended on microseconds since
/// 2000-01-01 (timestamptz too: it is stored in UTC, so the session time zone doesn't matter).
pub fn hash_timestamp(micros_since_2000: i64) -> u64 {
    hash_int8(micros_since_2000)
}

/// boolean partitioning uses hashcharextended (hashfunc.c): the char 0/1 widened to uint32.
pub fn hash_bool(v: bool) -> u64 {
    hash_uint32_extended(u32::from(v), HASH_PARTITION_SEED)
}

/// Row hash for a single-column key as compute_partition_hash_value (partbounds.c) does it:
/// start at 0, combine each non-NULL column's hash; None (NULL) → 0.
pub fn row_hash(column_hash: Option<u64>) -> u64 {
    column_hash.map_or(0, |h| hash_combine64(0, h))
}

/// Remainder for MODULUS m: partition (m, r) holds rows with `row_hash % m == r` (partbounds.c).
/// A modulus of 0 is invalid in PostgreSQL; return 0 rather than panic.
pub fn remainder(row_hash: u64, modulus: u64) -> u64 {
    row_hash.checked_rem(modulus).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r4(h: u64) -> u64 {
        remainder(row_hash(Some(h)), 4)
    }

    #[test]
    fn extended_hash_values() {
        assert_eq!(hash_int8(1) as i64, 5968994663651403477);
        assert_eq!(hash_text("abc") as i64, 3628778498291917250);
        // Cross-type consistency that hashint8extended's fold exists for.
        for v in [0i32, 1, -1, 42, i32::MIN, i32::MAX] {
            assert_eq!(hash_int8(i64::from(v)), hash_int4(v));
        }
        assert_eq!(hash_int4(i32::from(-7i16)), hash_int4(-7));
    }

    #[test]
    fn int_vectors() {
        let v4 = [
            (0, 0),
            (1, 0),
            (2, 2),
            (3, 1),
            (42, 2),
            (-1, 1),
            (i32::MAX, 3),
            (i32::MIN, 2),
        ];
        for (v, r) in v4 {
            assert_eq!(r4(hash_int4(v)), r, "int4 {v}");
        }
        assert_eq!(r4(hash_int8(5_000_000_000)), 0);
        assert_eq!(r4(hash_int8(-5_000_000_000)), 3);
    }

    #[test]
    fn text_vectors() {
        for (v, r) in [("", 2), ("a", 2), ("abc", 1), ("hello world", 0)] {
            assert_eq!(r4(hash_text(v)), r, "text {v:?}");
        }
    }

    #[test]
    fn uuid_vectors() {
        let u = [
            0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
            0x0a, 0x11,
        ];
        assert_eq!(r4(hash_uuid(&u)), 0);
        assert_eq!(r4(hash_uuid(&[0u8; 16])), 1);
    }

    #[test]
    fn null_and_bad_modulus() {
        assert_eq!(row_hash(None), 0);
        assert_eq!(remainder(row_hash(None), 4), 0);
        assert_eq!(remainder(12345, 0), 0);
    }
}
