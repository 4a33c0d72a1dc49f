//! Session ids: 128 random bits from the OS CSPRNG, as URL-safe text, with an
//! optional mesh tag in front.
//!
//! Text form: `[<mesh>.]<22 base64url characters>`, for example
//! `QmFzZTY0VXJsU2FmZUlkAA` or `eu1.QmFzZTY0VXJsU2FmZUlkAA`. The tag names the
//! Raft group ("mesh") that owns the session, so a sticky load balancer can route
//! on it; it is covered by the cookie signature like the rest of the id.
//!
//! Ids are only ever minted by the server ([`SessionId::generate`]); a parsed id
//! is only ever used to *look up* a session, never to create one, which is what
//! rules out session fixation.

use std::fmt;
use std::num::NonZeroU8;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Number of random bytes in a session id (128 bits).
pub const ID_RANDOM_BYTES: usize = 16;
/// Length of the random part in text form (base64url, no padding).
const ID_TEXT_LEN: usize = 22;
/// Longest mesh tag accepted.
pub const MAX_MESH_TAG_LEN: usize = 15;

/// Why a piece of text is not a valid session id or mesh tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The random part is not 22 base64url characters.
    #[error("session id must be 22 base64url characters after the optional mesh tag")]
    BadRandomPart,
    /// The mesh tag is empty, too long, or has characters other than `[a-z0-9-]`.
    #[error("mesh tag must be 1-{MAX_MESH_TAG_LEN} characters of [a-z0-9-]")]
    BadMeshTag,
    /// The OS random number generator failed.
    #[error("the OS random number generator failed: {0}")]
    Random(String),
}

/// Name of the mesh (Raft group) that owns a session: 1 to 15 characters of
/// `[a-z0-9-]`. Stored inline so that ids stay `Copy`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeshTag {
    /// Tag bytes; only the first `len` are used, the rest are zero.
    bytes: [u8; MAX_MESH_TAG_LEN],
    /// Number of bytes in use; never 0, which leaves 0 free to mean "no
    /// tag": an `Option<MeshTag>` is 16 bytes and a [`SessionId`] 32, not
    /// 33 (8 bytes less per slot of every session map's hash table).
    len: NonZeroU8,
}

impl MeshTag {
    /// Validates and builds a mesh tag.
    ///
    /// ```
    /// use session_core::MeshTag;
    /// assert_eq!(MeshTag::new("eu-1").unwrap().as_str(), "eu-1");
    /// assert!(MeshTag::new("EU 1").is_err());
    /// ```
    pub fn new(tag: &str) -> Result<Self, IdError> {
        let raw = tag.as_bytes();
        let len = u8::try_from(raw.len()).ok().and_then(NonZeroU8::new);
        let Some(len) = len.filter(|_| raw.len() <= MAX_MESH_TAG_LEN) else {
            return Err(IdError::BadMeshTag);
        };
        if !raw
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        {
            return Err(IdError::BadMeshTag);
        }
        let mut bytes = [0u8; MAX_MESH_TAG_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        Ok(Self { bytes, len })
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored (checked in `new`).
        std::str::from_utf8(&self.bytes[..usize::from(self.len.get())]).unwrap_or("")
    }
}

impl fmt::Debug for MeshTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MeshTag({})", self.as_str())
    }
}

impl fmt::Display for MeshTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MeshTag {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A session id. `Copy`, 32 bytes, hashable: cheap to use as a map key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId {
    /// Owning mesh, if the deployment uses meshes.
    mesh: Option<MeshTag>,
    /// The secret, unguessable part.
    random: [u8; ID_RANDOM_BYTES],
}

impl SessionId {
    /// Mints a fresh id from the OS CSPRNG, tagged with `mesh` if given.
    pub fn generate(mesh: Option<MeshTag>) -> Result<Self, IdError> {
        let mut random = [0u8; ID_RANDOM_BYTES];
        getrandom::fill(&mut random).map_err(|e| IdError::Random(e.to_string()))?;
        Ok(Self { mesh, random })
    }

    /// The mesh that owns this session, if any.
    pub fn mesh(&self) -> Option<MeshTag> {
        self.mesh
    }

    /// The random bytes (for stores that shard by them).
    pub fn random_bytes(&self) -> &[u8; ID_RANDOM_BYTES] {
        &self.random
    }

    /// Parses the text form, rejecting anything malformed.
    ///
    /// ```
    /// use session_core::SessionId;
    /// let id = SessionId::generate(None).unwrap();
    /// assert_eq!(SessionId::parse(&id.to_string()).unwrap(), id);
    /// assert!(SessionId::parse("../../etc/passwd").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let (mesh, random_text) = match text.split_once('.') {
            Some((tag, rest)) => (Some(MeshTag::new(tag)?), rest),
            None => (None, text),
        };
        if random_text.len() != ID_TEXT_LEN {
            return Err(IdError::BadRandomPart);
        }
        let mut random = [0u8; ID_RANDOM_BYTES];
        let written = URL_SAFE_NO_PAD
            .decode_slice(random_text, &mut random)
            .map_err(|_| IdError::BadRandomPart)?;
        if written != ID_RANDOM_BYTES {
            return Err(IdError::BadRandomPart);
        }
        let id = Self { mesh, random };
        // Reject non-canonical encodings (trailing bits set) so that one id has
        // exactly one text form.
        let mut canonical = [0u8; ID_TEXT_LEN];
        URL_SAFE_NO_PAD
            .encode_slice(random, &mut canonical)
            .map_err(|_| IdError::BadRandomPart)?;
        if canonical != random_text.as_bytes() {
            return Err(IdError::BadRandomPart);
        }
        Ok(id)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(mesh) = &self.mesh {
            write!(f, "{mesh}.")?;
        }
        let mut text = [0u8; ID_TEXT_LEN];
        URL_SAFE_NO_PAD
            .encode_slice(self.random, &mut text)
            .map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SessionId {
    /// Debug output hides most of the id: ids are bearer secrets and must not
    /// end up whole in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_string();
        let shown = text.len().saturating_sub(ID_TEXT_LEN - 4);
        write!(f, "SessionId({}…)", &text[..shown])
    }
}

impl FromStr for SessionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for SessionId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for MeshTag {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for MeshTag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::new(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_differ() {
        let tag = MeshTag::new("m1").unwrap();
        let a = SessionId::generate(Some(tag)).unwrap();
        let b = SessionId::generate(Some(tag)).unwrap();
        assert_ne!(a, b);
        let text = a.to_string();
        assert!(text.starts_with("m1."));
        assert_eq!(SessionId::parse(&text).unwrap(), a);
        assert_eq!(SessionId::parse(&text).unwrap().mesh(), Some(tag));
    }

    #[test]
    fn malformed_ids_are_rejected() {
        let good = SessionId::generate(None).unwrap().to_string();
        for bad in [
            "",
            ".",
            "short",
            &good[1..],
            &format!("{good}A"),
            &format!("UPPER.{good}"),
            &format!(".{good}"),
            &format!("a.b.{good}"),
            "!!!!!!!!!!!!!!!!!!!!!!",
            "AAAAAAAAAAAAAAAAAAAAAB", // non-canonical trailing bits
            "ÄAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(SessionId::parse(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn an_id_is_32_bytes_with_or_without_a_tag() {
        assert_eq!(std::mem::size_of::<Option<MeshTag>>(), 16);
        assert_eq!(std::mem::size_of::<SessionId>(), 32);
        for tag in ["", "a", "abcdefghijklmno", "abcdefghijklmnop"] {
            let made = MeshTag::new(tag).map(|t| t.as_str().to_owned());
            let fits = (1..=MAX_MESH_TAG_LEN).contains(&tag.len());
            assert_eq!(made.ok(), fits.then(|| tag.to_owned()), "{tag:?}");
        }
    }

    #[test]
    fn debug_does_not_print_whole_id() {
        let id = SessionId::generate(None).unwrap();
        assert!(!format!("{id:?}").contains(&id.to_string()));
    }
}
