//! In-memory store.
/// todo
#[derive(Debug, Default)]
pub struct MemoryStore;
/// todo
#[derive(Debug, Default)]
pub struct MemoryStoreConfig;
