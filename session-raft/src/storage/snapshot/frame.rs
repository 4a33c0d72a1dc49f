//! The snapshot frame: `magic (8) | format version (u32 LE) | payload length
//! (u64 LE) | FNV-1a 64 checksum of the payload (u64 LE) | payload`. The one
//! place that knows it, for the writer and reader in [`super::format`] and
//! for tests and fuzz targets that wrap hostile payloads in a valid frame.

/// First bytes of every snapshot.
const MAGIC: &[u8; 8] = b"RSESSNAP";
/// Version of the payload layout; bump on any incompatible change.
pub(crate) const FORMAT_VERSION: u32 = 2;
/// Bytes before the payload.
pub(crate) const HEADER_LEN: usize = 8 + 4 + 8 + 8;

/// FNV-1a, 64 bit, fed in pieces: cheap, dependency-free detection of
/// corrupted bytes (not a defence against forgery; peers are authenticated
/// by the cluster secret).
#[derive(Debug, Clone)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

/// The header of a payload of `len` bytes whose checksum is `sum`.
pub(crate) fn header(len: u64, sum: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&len.to_le_bytes());
    header[20..28].copy_from_slice(&sum.to_le_bytes());
    header
}

/// What a header declares: payload length and checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Declared {
    pub(crate) len: u64,
    pub(crate) sum: u64,
}

/// Reads a header; the error says what is wrong with it.
pub(crate) fn parse_header(header: &[u8; HEADER_LEN]) -> Result<Declared, String> {
    if &header[..8] != MAGIC {
        return Err("not a session snapshot (bad magic)".into());
    }
    let word = |at: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(bytes)
    };
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != FORMAT_VERSION {
        return Err(format!(
            "format version {version}, expected {FORMAT_VERSION}"
        ));
    }
    Ok(Declared {
        len: word(12),
        sum: word(20),
    })
}

/// `payload` in a valid frame of the current version: what a snapshot of
/// that payload would be. For tests and fuzz targets, so that the payload
/// decoder itself sees their bytes.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut sum = Checksum::default();
    sum.update(payload);
    let mut bytes = header(payload.len() as u64, sum.value()).to_vec();
    bytes.extend_from_slice(payload);
    bytes
}
