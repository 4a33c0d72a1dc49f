//! The change-set wire form: a Raft log entry's `Command` (which carries
//! `ChangeSet`s and `NewSession`s) and a bare `ChangeSet`, decoded from
//! arbitrary bytes with the cluster's bincode configuration (standard,
//! length-limited). Never panics; whatever decodes re-encodes to a value
//! that decodes the same, and applying a decoded change set (however
//! hostile: `clear` together with sets and removals, any size limit) to a
//! record never panics and either changes it whole or not at all.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::{ChangeSet, SessionRecord};
use session_raft::internals::Command;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 2 << 30 }>()
}

fn round_trip<T>(value: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let bytes = bincode::serde::encode_to_vec(value, config()).unwrap();
    bincode::serde::decode_from_slice(&bytes, config()).unwrap().0
}

fuzz_target!(|data: &[u8]| {
    if let Ok((command, _)) = bincode::serde::decode_from_slice::<Command, _>(data, config()) {
        assert_eq!(round_trip(&command), command);
        let _ = command.to_string();
    }
    if let Ok((changes, _)) = bincode::serde::decode_from_slice::<ChangeSet, _>(data, config()) {
        assert_eq!(round_trip(&changes), changes);
        let mut record = SessionRecord {
            data: [("a".to_owned(), vec![1; 10]), ("b".to_owned(), vec![])].into(),
            created_at: 0,
            expires_at: 100,
            version: 0,
        };
        let before = record.clone();
        if record.apply(&changes, 1).is_err() {
            assert_eq!(record, before, "a refused change set wrote something");
        } else if changes.size_limit > 0 {
            assert!(record.size() <= changes.size_limit as usize);
        }
    }
});
