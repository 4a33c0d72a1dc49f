//! bincode in the Raft store's wire configuration, for tests of what the
//! stores encode and decode.

/// Same shape as the Raft store's wire configuration (bounded lengths).
pub fn wire() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<{ 1 << 20 }>()
}

pub fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, wire()).unwrap()
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    bincode::serde::decode_from_slice::<T, _>(bytes, wire())
        .map(|(value, _)| value)
        .map_err(|e| e.to_string())
}
