//! The cluster port's request decoder (`session_raft::internals::decode_cluster_request`,
//! the very function the server runs on every authenticated body): arbitrary
//! bytes give a request or an error, never a panic or a huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = session_raft::internals::decode_cluster_request(data);
});
