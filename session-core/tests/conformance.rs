//! The conformance suite as another crate uses it: one test per check via the
//! exported macro (this is how `session-raft` runs it against a cluster).

session_core::store_conformance_tests!(memory_store, session_core::MemoryStore::default());

session_core::store_conformance_tests!(
    memory_store_one_shard,
    session_core::MemoryStore::new(session_core::MemoryStoreConfig {
        shards: 1,
        ..Default::default()
    })
);
