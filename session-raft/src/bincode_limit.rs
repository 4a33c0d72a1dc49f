//! bincode decoding under a size limit chosen at run time.
//!
//! bincode checks every length prefix against its configured limit before it
//! allocates, but that limit is a const generic. Data that may be old or
//! foreign (RPC bodies, snapshot records, stored log entries) needs a limit
//! that fits where it came from: the body limit of the path it arrived on,
//! the bytes a record can have. So [`decode_slice`] and [`decode_read`] take
//! the limit as a value and run bincode with the smallest power of two at or
//! above it: a hostile length prefix can then make bincode allocate at most
//! about twice the limit the caller named, never the 2^60 bytes it claims.
//!
//! bincode counts what a value takes in memory, not on the wire: a `u64`
//! claims 8 bytes however short its varint, a `u128` 16. So the limit of
//! bytes that are all there is [`CLAIMS_PER_BYTE`] times their length, and
//! [`decode_slice`] never allows more than that for the slice it is given.

use std::io::Read;

use serde::de::DeserializeOwned;

/// Smallest bincode limit used (4 KiB): below it, the rounding is noise.
const MIN_LIMIT_LOG2: u32 = 12;
/// Largest bincode limit used (4 GiB).
const MAX_LIMIT_LOG2: u32 = 32;

/// Most bincode claims per encoded byte (a one-byte varint `u128`).
pub(crate) const CLAIMS_PER_BYTE: usize = 16;

/// The standard configuration (varint integers, little endian) with a limit.
/// Encoding ignores the limit, so every limit encodes the same bytes.
fn config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// The standard configuration, for encoding.
pub(crate) fn encode_config() -> impl bincode::config::Config {
    bincode::config::standard()
}

/// log2 of the bincode limit that covers `limit`.
fn limit_log2(limit: usize) -> u32 {
    match limit.max(1).checked_next_power_of_two() {
        Some(rounded) => rounded
            .trailing_zeros()
            .clamp(MIN_LIMIT_LOG2, MAX_LIMIT_LOG2),
        None => MAX_LIMIT_LOG2,
    }
}

/// Runs `$call::<T, LIMIT>($args)` with the const `LIMIT` for `$limit`.
macro_rules! with_limit {
    ($limit:expr, $call:ident, $($args:expr),*) => {
        match limit_log2($limit) {
            12 => $call::<_, { 1 << 12 }>($($args),*),
            13 => $call::<_, { 1 << 13 }>($($args),*),
            14 => $call::<_, { 1 << 14 }>($($args),*),
            15 => $call::<_, { 1 << 15 }>($($args),*),
            16 => $call::<_, { 1 << 16 }>($($args),*),
            17 => $call::<_, { 1 << 17 }>($($args),*),
            18 => $call::<_, { 1 << 18 }>($($args),*),
            19 => $call::<_, { 1 << 19 }>($($args),*),
            20 => $call::<_, { 1 << 20 }>($($args),*),
            21 => $call::<_, { 1 << 21 }>($($args),*),
            22 => $call::<_, { 1 << 22 }>($($args),*),
            23 => $call::<_, { 1 << 23 }>($($args),*),
            24 => $call::<_, { 1 << 24 }>($($args),*),
            25 => $call::<_, { 1 << 25 }>($($args),*),
            26 => $call::<_, { 1 << 26 }>($($args),*),
            27 => $call::<_, { 1 << 27 }>($($args),*),
            28 => $call::<_, { 1 << 28 }>($($args),*),
            29 => $call::<_, { 1 << 29 }>($($args),*),
            30 => $call::<_, { 1 << 30 }>($($args),*),
            31 => $call::<_, { 1 << 31 }>($($args),*),
            _ => $call::<_, { 1 << 32 }>($($args),*),
        }
    };
}

fn slice_with<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, config::<LIMIT>())
}

fn read_with<T: DeserializeOwned, const LIMIT: usize>(
    reader: &mut dyn Read,
) -> Result<T, bincode::error::DecodeError> {
    // `&mut &mut dyn Read` is sized, as bincode needs.
    bincode::serde::decode_from_std_read(&mut { reader }, config::<LIMIT>())
}

/// Decodes one value from the start of `bytes`, which came under a bound of
/// `limit` bytes; returns it and the bytes used. No length prefix may claim
/// more than the bytes there are could hold (see the module docs), so a
/// hostile one is refused before anything is allocated for it.
pub(crate) fn decode_slice<T: DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<(T, usize), bincode::error::DecodeError> {
    let claims = limit.min(bytes.len()).saturating_mul(CLAIMS_PER_BYTE);
    with_limit!(claims, slice_with, bytes)
}

/// Decodes one value from `reader` (reading no further than it), allocating
/// for no length prefix beyond (about twice) `limit` claimed bytes; callers
/// that know `n` bytes are left pass `n * CLAIMS_PER_BYTE`.
pub(crate) fn decode_read<T: DeserializeOwned>(
    reader: &mut dyn Read,
    limit: usize,
) -> Result<T, bincode::error::DecodeError> {
    with_limit!(limit, read_with, reader)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `String` claiming `len` bytes, with only three behind the claim
    /// (strings and byte buffers are what bincode allocates for up front).
    fn claim(len: u64) -> Vec<u8> {
        let mut bytes = vec![0xfd];
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        bytes
    }

    #[test]
    fn limits_round_up_to_a_power_of_two_within_bounds() {
        assert_eq!(limit_log2(0), MIN_LIMIT_LOG2);
        assert_eq!(limit_log2(5000), 13);
        assert_eq!(limit_log2(64 << 20), 26);
        assert_eq!(limit_log2((64 << 20) + 1), 27);
        assert_eq!(limit_log2(usize::MAX), MAX_LIMIT_LOG2);
    }

    #[test]
    fn a_claim_beyond_the_limit_is_refused_before_allocating() {
        // 1 TiB claimed: an allocation this size would abort the test.
        let refused = decode_slice::<String>(&claim(1 << 40), 1 << 20).unwrap_err();
        assert!(
            matches!(refused, bincode::error::DecodeError::LimitExceeded),
            "{refused:?}"
        );
        let refused = decode_read::<String>(&mut &claim(1 << 40)[..], 1 << 20).unwrap_err();
        assert!(matches!(
            refused,
            bincode::error::DecodeError::LimitExceeded
        ));
        // Within the limit, a claim still needs the bytes behind it.
        assert!(decode_slice::<String>(&claim(3), 1 << 20).is_ok());
        assert!(decode_slice::<String>(&claim(4), 1 << 20).is_err());
    }
}
