//! The alternative `hash = "siphash"` shard function: SipHash-1-3 with fixed zero keys.
//!
//! Callers must pass *normalised* bytes, never a value's `Hash` impl, so the same logical key
//! lands on the same shard whichever wire format (text or binary) or integer width it came in:
//! - int2 / int4 / int8: `i64::to_be_bytes()` of the value (so 42::int2 == 42::int4 == 42::int8);
//! - text / varchar: the UTF-8 bytes;
//! - uuid: the 16 raw bytes;
//! - date: `i32::to_be_bytes()` of days since 2000-01-01;
//! - timestamp / timestamptz: `i64::to_be_bytes()` of microseconds since 2000-01-01 (UTC).

use core::hash::Hasher;
use siphasher::sip::SipHasher13;

/// SipHash-1-3 of `bytes` with keys (0, 0). The keys are fixed because the placement of every
/// row depends on them: changing them (or the siphasher algorithm) moves data between shards.
pub fn siphash_key(bytes: &[u8]) -> u64 {
    let mut h = SipHasher13::new_with_keys(0, 0);
    h.write(bytes);
    h.finish()
}
