//! Property tests of the two decoders that take bytes from the network or
//! the disk: cluster RPC frames ([`crate::rpc::decode`]) and snapshots
//! ([`crate::storage::snapshot::decode`] / [`crate::storage::snapshot::verify`]).
//!
//! - Arbitrary bytes, and valid encodings with a few bytes changed, give a
//!   value or an error, never a panic (and never a huge allocation: the
//!   length limits are checked first, see the modules).
//! - Encoding then decoding is the identity: forwarded write batches and
//!   their outcomes, and snapshots of arbitrary session maps.
//! - A snapshot with any single byte changed is refused (the header checks
//!   and the FNV-1a checksum, which changes whenever one byte does).
//!
//! Case counts are modest so that the module runs in a few seconds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use session_core::{
    ChangeSet, Committed, ConsistencyToken, MeshTag, NewSession, SessionId, SessionRecord,
    StoreError,
};

use crate::command::Command;
use crate::rpc::{self, Request, Response, SnapshotOffer, SnapshotReply, WriteOutcome};
use crate::storage::snapshot;
use crate::types::{EntryPayload, LogId, StoredMembership, TypeConfig};

fn session_id() -> impl Strategy<Value = SessionId> {
    proptest::option::of("[a-z0-9-]{1,15}")
        .prop_map(|mesh| SessionId::generate(mesh.map(|m| MeshTag::new(&m).unwrap())).unwrap())
}

fn data() -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    proptest::collection::btree_map(
        "[a-z]{0,4}",
        proptest::collection::vec(any::<u8>(), 0..16),
        0..4,
    )
}

fn change_set() -> impl Strategy<Value = ChangeSet> {
    (
        any::<bool>(),
        proptest::collection::btree_set("[a-z]{0,4}", 0..3),
        data(),
        proptest::option::of(any::<u64>()),
        proptest::option::of(session_id()),
        proptest::option::of(any::<u64>()),
        any::<u32>(),
    )
        .prop_map(
            |(clear, remove, set, expires_at, rotate_to, expected_version, size_limit)| ChangeSet {
                clear,
                remove: remove.into_iter().collect::<BTreeSet<_>>(),
                set,
                expires_at,
                rotate_to,
                expected_version,
                size_limit,
            },
        )
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            session_id(),
            data(),
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            proptest::option::of(any::<u64>())
        )
            .prop_map(
                |(id, data, created_at, expires_at, size_limit, max_sessions)| {
                    Command::Create {
                        id,
                        session: NewSession {
                            data: data.into(),
                            created_at,
                            expires_at,
                            size_limit,
                        },
                        max_sessions,
                    }
                }
            ),
        (session_id(), change_set(), any::<u64>()).prop_map(|(id, changes, now)| Command::Apply {
            id,
            changes,
            now
        }),
        session_id().prop_map(|id| Command::Delete { id }),
        any::<u64>().prop_map(|now| Command::ExpireBefore { now }),
    ]
}

fn store_error() -> impl Strategy<Value = StoreError> {
    prop_oneof![
        Just(StoreError::NotFound),
        Just(StoreError::IdExists),
        any::<u64>().prop_map(|current| StoreError::VersionConflict { current }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(size, limit)| StoreError::TooLarge { size, limit }),
        (any::<u64>(), ".{0,20}").prop_map(|(ms, reason)| StoreError::unavailable(
            std::time::Duration::from_millis(ms),
            reason
        )),
        ".{0,20}".prop_map(StoreError::Backend),
    ]
}

fn outcome() -> impl Strategy<Value = WriteOutcome> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(version, token)| WriteOutcome::Done(Ok(
            Committed {
                version,
                token: ConsistencyToken::new(token.rotate_left(17), token),
            }
        ))),
        store_error().prop_map(|e| WriteOutcome::Done(Err(e))),
        proptest::option::of(any::<u64>()).prop_map(|leader| WriteOutcome::NotLeader { leader }),
    ]
}

fn record() -> impl Strategy<Value = SessionRecord> {
    (data(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(data, created_at, expires_at, version)| SessionRecord {
            data: data.into(),
            created_at,
            expires_at,
            version,
        },
    )
}

fn log_id(index: u64) -> LogId {
    openraft::testing::log_id::<TypeConfig>(1, 1, index)
}

fn membership(index: u64) -> StoredMembership {
    let entry = openraft::testing::membership_ent::<TypeConfig>(
        1,
        1,
        index,
        vec![BTreeSet::from([1, 2, 3])],
    );
    match entry.payload {
        EntryPayload::Membership(m) => StoredMembership::new(Some(log_id(index)), m),
        _ => unreachable!("a membership entry"),
    }
}

/// A snapshot of `records` at `index`, as encoded bytes.
fn snapshot_bytes(index: u64, records: &[(SessionId, SessionRecord)]) -> Vec<u8> {
    let shared: Vec<(SessionId, Arc<SessionRecord>)> = records
        .iter()
        .map(|(id, r)| (*id, Arc::new(r.clone())))
        .collect();
    snapshot::encode(&Some(log_id(index)), &membership(1), &shared).unwrap()
}

/// The body limit frames are decoded under (the default `max_rpc_bytes`).
const RPC_LIMIT: usize = 64 << 20;

fn all_rpc_decoders(bytes: &[u8]) {
    let _ = crate::internals::decode_cluster_request(bytes);
    let _ = rpc::decode::<Request>(bytes, RPC_LIMIT);
    let _ = rpc::decode::<Response>(bytes, RPC_LIMIT);
    let _ = rpc::decode::<SnapshotOffer>(bytes, RPC_LIMIT);
    let _ = rpc::decode::<SnapshotReply>(bytes, RPC_LIMIT);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rpc_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        all_rpc_decoders(&bytes);
    }

    #[test]
    fn write_batches_round_trip(commands in proptest::collection::vec(command(), 0..8)) {
        let shared: Vec<_> = commands.iter().cloned().map(std::sync::Arc::new).collect();
        let bytes = rpc::encode(&Request::Write(shared)).unwrap();
        prop_assert_eq!(crate::internals::decode_cluster_request(&bytes), Ok("write"));
        match rpc::decode::<Request>(&bytes, RPC_LIMIT) {
            Ok(Request::Write(decoded)) => {
                let decoded: Vec<Command> = decoded.iter().map(|c| (**c).clone()).collect();
                prop_assert_eq!(decoded, commands)
            }
            other => prop_assert!(false, "decoded {other:?}"),
        }
        let mesh = Request::MeshWrite { command: Command::ExpireBefore { now: 7 }, budget_ms: 9 };
        let bytes = rpc::encode(&mesh).unwrap();
        let decoded = rpc::decode::<Request>(&bytes, RPC_LIMIT);
        prop_assert!(
            matches!(
                decoded,
                Ok(Request::MeshWrite { command: Command::ExpireBefore { now: 7 }, budget_ms: 9 })
            ),
            "decoded {:?}",
            decoded
        );
    }

    #[test]
    fn write_outcomes_round_trip(outcomes in proptest::collection::vec(outcome(), 0..8)) {
        let bytes = rpc::encode(&Response::Write(outcomes.clone())).unwrap();
        match rpc::decode::<Response>(&bytes, RPC_LIMIT) {
            Ok(Response::Write(decoded)) => prop_assert_eq!(decoded, outcomes),
            other => prop_assert!(false, "decoded {other:?}"),
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        commands in proptest::collection::vec(command(), 1..4),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let commands = commands.into_iter().map(std::sync::Arc::new).collect();
        let mut bytes = rpc::encode(&Request::Write(commands)).unwrap();
        for (at, value) in flips {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        all_rpc_decoders(&bytes);
        // Truncated anywhere: an error (a prefix of a message is never whole).
        let cut = cut.index(bytes.len());
        all_rpc_decoders(&bytes[..cut]);
    }

    #[test]
    fn snapshot_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        prop_assert!(snapshot::decode(&bytes).is_err() || bytes.len() >= 28);
        let _ = snapshot::verify(&Default::default(), &bytes);
        // The same bytes behind a valid header reach bincode.
        let _ = snapshot::decode(&snapshot::frame::frame(&bytes));
    }

    #[test]
    fn snapshots_round_trip(
        index in 1u64..1_000_000,
        records in proptest::collection::vec((session_id(), record()), 0..8),
    ) {
        let bytes = snapshot_bytes(index, &records);
        let contents = snapshot::decode(&bytes).unwrap();
        prop_assert_eq!(contents.last_applied, Some(log_id(index)));
        prop_assert_eq!(&contents.last_membership, &membership(1));
        prop_assert_eq!(contents.records, records);
        prop_assert!(snapshot::verify(&contents_meta(index), &bytes).is_ok());
    }

    #[test]
    fn any_changed_snapshot_byte_is_refused(
        records in proptest::collection::vec((session_id(), record()), 0..4),
        at in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let mut bytes = snapshot_bytes(5, &records);
        let at = at.index(bytes.len());
        bytes[at] = bytes[at].wrapping_add(delta);
        prop_assert!(snapshot::decode(&bytes).is_err(), "byte {at} changed, still accepted");
    }
}

fn contents_meta(index: u64) -> crate::types::SnapshotMeta {
    crate::types::SnapshotMeta {
        last_log_id: Some(log_id(index)),
        last_membership: membership(1),
    }
}
