//! The snapshot decoder (`session_raft::internals::snapshot::verify`, which the
//! snapshot endpoint runs before installing): arbitrary bytes are refused
//! or accepted, never a panic. Half of the inputs get a valid header and
//! checksum around them, so that the payload decoder (bincode) sees them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_raft::internals::snapshot;

/// Header of an empty snapshot: magic and format version (2: with group facts).
const MAGIC_AND_VERSION: &[u8] = b"RSESSNAP\x02\x00\x00\x00";

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut bytes = MAGIC_AND_VERSION.to_vec();
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in payload {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    bytes.extend_from_slice(&hash.to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

fuzz_target!(|data: &[u8]| {
    let meta = Default::default();
    match data.split_first() {
        Some((shape, payload)) if shape % 2 == 1 => {
            let _ = snapshot::verify(&meta, &framed(payload));
        }
        _ => {
            let _ = snapshot::verify(&meta, data);
        }
    }
});
