//! Secrets on disk: the cluster secret and the cookie signing key.
//!
//! Both are random bytes stored as hex text in files readable only by their
//! owner. `demo-app cluster` generates them on first start; every node of a
//! cluster reads the same files.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

/// Reads a hex secret file, refusing secrets shorter than `min_bytes`.
pub(crate) fn read_hex_file(path: &Path, min_bytes: usize) -> anyhow::Result<Vec<u8>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let bytes = decode_hex(text.trim())
        .with_context(|| format!("{} must hold hex text", path.display()))?;
    if bytes.len() < min_bytes {
        bail!(
            "{} holds {} bytes; at least {min_bytes} are needed",
            path.display(),
            bytes.len()
        );
    }
    Ok(bytes)
}

/// Writes `len` random bytes as hex to `path` unless the file exists.
pub(crate) fn ensure_hex_file(path: &Path, len: usize) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{}", encode_hex(&bytes))?;
    file.sync_all()?;
    Ok(())
}

/// Random bytes from the OS.
pub(crate) fn random_bytes(len: usize) -> anyhow::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("OS random source: {e}"))?;
    Ok(bytes)
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    if text.len() % 2 != 0 {
        bail!("odd number of hex digits");
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .context("not a hex digit")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let bytes = vec![0, 1, 0xab, 0xff];
        assert_eq!(decode_hex(&encode_hex(&bytes)).unwrap(), bytes);
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
        assert!(decode_hex("éé").is_err());
    }
}
