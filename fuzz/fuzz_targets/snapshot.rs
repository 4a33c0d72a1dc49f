//! The snapshot decoder (`session_raft::internals::snapshot::verify`, which the
//! snapshot endpoint runs before installing): arbitrary bytes are refused
//! or accepted, never a panic. Half of the inputs get a valid header and
//! checksum around them, so that the payload decoder (bincode) sees them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_raft::internals::snapshot;

fuzz_target!(|data: &[u8]| {
    let meta = Default::default();
    match data.split_first() {
        Some((shape, payload)) if shape % 2 == 1 => {
            let _ = snapshot::verify(&meta, &snapshot::frame::frame(payload));
        }
        _ => {
            let _ = snapshot::verify(&meta, data);
        }
    }
});
