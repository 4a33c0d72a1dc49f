//! The session cookie's signature and its `Set-Cookie` line, written without
//! the `cookie` crate's jar on the per-write path.
//!
//! The format is the `cookie` crate's signed format, byte for byte: the value
//! is `base64(HMAC-SHA256(signing key, value)) + value`, and the header is
//! `name=value` percent-encoded with that crate's set, then the attributes
//! in its order. Cookies sealed before this module existed still verify, and
//! the crate stays the oracle in the tests. What this saves per write (the
//! jar's map, a fresh HMAC key schedule per call, `Display` machinery and
//! its copies) was a tenth of a standalone write's CPU.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use cookie::{Key, SameSite};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Length of the base64 (padded) HMAC-SHA256 digest in front of the value.
const DIGEST_LEN: usize = 44;

/// The signing half of a [`Key`], keyed once: cloning a keyed HMAC copies
/// its state instead of hashing the key's pads again on every call.
#[derive(Clone)]
pub(crate) struct Signer {
    mac: Hmac<Sha256>,
}

impl Signer {
    /// The signer for `key`'s signing half (the one `SignedJar` uses).
    pub(crate) fn new(key: &Key) -> Self {
        Self {
            mac: Hmac::new_from_slice(key.signing()).expect("HMAC takes a key of any length"),
        }
    }

    /// Appends the signed form of `value` to `out`.
    pub(crate) fn sign_into(&self, value: &str, out: &mut String) {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        STANDARD.encode_string(mac.finalize().into_bytes(), out);
        out.push_str(value);
    }

    /// The value inside a signed value, if its signature holds (checked in
    /// constant time).
    pub(crate) fn verify<'a>(&self, signed: &'a str) -> Option<&'a str> {
        if !signed.is_char_boundary(DIGEST_LEN) {
            return None;
        }
        let (digest, value) = signed.split_at(DIGEST_LEN);
        let mut raw = [0u8; 33];
        let n = STANDARD.decode_slice(digest, &mut raw).ok()?;
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        mac.verify_slice(&raw[..n]).ok().map(|()| value)
    }
}

/// The attributes of a `Set-Cookie` line that sets a value.
pub(crate) struct Attributes<'a> {
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) secure: bool,
    pub(crate) path: &'a str,
    pub(crate) domain: Option<&'a str>,
    /// Seconds; none for a browser-session cookie.
    pub(crate) max_age: Option<u64>,
}

/// The `Set-Cookie` line for `name=value`, as `Cookie::encoded()` writes it.
pub(crate) fn set_cookie_line(name: &str, value: &str, attributes: &Attributes<'_>) -> String {
    let mut line = String::with_capacity(name.len() + value.len() + 80);
    percent_encode_into(name, &mut line);
    line.push('=');
    percent_encode_into(value, &mut line);
    if attributes.http_only {
        line.push_str("; HttpOnly");
    }
    line.push_str(match attributes.same_site {
        SameSite::Strict => "; SameSite=Strict",
        SameSite::Lax => "; SameSite=Lax",
        SameSite::None => "; SameSite=None",
    });
    if attributes.secure {
        line.push_str("; Secure");
    }
    line.push_str("; Path=");
    line.push_str(attributes.path);
    if let Some(domain) = attributes.domain {
        line.push_str("; Domain=");
        line.push_str(domain);
    }
    if let Some(secs) = attributes.max_age {
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(line, "; Max-Age={secs}");
    }
    line
}

/// The bytes the `cookie` crate percent-encodes in names and values:
/// controls, non-ASCII, and the URL userinfo set plus `(`, `)` and `,`.
const ENCODED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = byte < 0x20 || byte >= 0x7f;
        byte += 1;
    }
    let listed = b" \"<>`#?{}/:;=@[\\]^|%(),";
    let mut i = 0;
    while i < listed.len() {
        table[listed[i] as usize] = true;
        i += 1;
    }
    table
};

fn must_encode(byte: u8) -> bool {
    ENCODED[usize::from(byte)]
}

fn percent_encode_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut plain_from = 0;
    for (at, &byte) in text.as_bytes().iter().enumerate() {
        if must_encode(byte) {
            // Bytes between escapes are printable ASCII, so both ends of the
            // run are character boundaries (every non-ASCII byte is escaped).
            if plain_from < at {
                out.push_str(&text[plain_from..at]);
            }
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
            plain_from = at + 1;
        }
    }
    if plain_from < text.len() {
        out.push_str(&text[plain_from..]);
    }
}

#[cfg(test)]
mod tests {
    use cookie::{Cookie, CookieJar};

    use super::*;

    #[test]
    fn signs_and_verifies_exactly_as_the_cookie_crate() {
        let key = Key::generate();
        let signer = Signer::new(&key);
        for value in [
            "",
            "abc~1.0",
            "3Y-q_982lsRUrdvuTuogQg~18446744073709551615.ff",
        ] {
            let mut ours = String::new();
            signer.sign_into(value, &mut ours);
            let mut jar = CookieJar::new();
            jar.signed_mut(&key)
                .add(Cookie::new("sid", value.to_owned()));
            assert_eq!(ours, jar.get("sid").unwrap().value());
            assert_eq!(signer.verify(&ours), Some(value));
            let theirs = jar.signed(&key).verify(Cookie::new("sid", ours.clone()));
            assert_eq!(theirs.unwrap().value(), value);
        }
    }

    #[test]
    fn refuses_what_does_not_verify() {
        let signer = Signer::new(&Key::generate());
        let mut signed = String::new();
        signer.sign_into("abc~1.0", &mut signed);
        assert_eq!(Signer::new(&Key::generate()).verify(&signed), None);
        let moved = signed.replace("~1.0", "~2.0");
        assert_eq!(signer.verify(&moved), None);
        for bad in [
            "",
            "short",
            &signed[..43],
            &"é".repeat(30),
            &format!("!{}", &signed[1..]),
        ] {
            assert_eq!(signer.verify(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_line_is_the_cookie_crates_encoded_display() {
        let names = ["sid", "my session", "a=b"];
        let values = ["Ab+/9=~1.0", "", "é;(x),\"%\u{7f}"];
        for (name, value) in names.iter().zip(values) {
            for (secure, http_only, same_site, domain, max_age) in [
                (true, true, SameSite::Lax, None, Some(60)),
                (false, false, SameSite::Strict, Some("example.com"), None),
                (true, false, SameSite::None, None, Some(1)),
            ] {
                let mut cookie = Cookie::build((name.to_string(), value.to_string()))
                    .path("/app")
                    .secure(secure)
                    .http_only(http_only)
                    .same_site(same_site)
                    .build();
                if let Some(domain) = domain {
                    cookie.set_domain(domain);
                }
                if let Some(secs) = max_age {
                    cookie.set_max_age(cookie::time::Duration::seconds(secs as i64));
                }
                let attributes = Attributes {
                    http_only,
                    same_site,
                    secure,
                    path: "/app",
                    domain,
                    max_age,
                };
                assert_eq!(
                    set_cookie_line(name, value, &attributes),
                    cookie.encoded().to_string()
                );
            }
        }
    }
}
