//! `SessionId::parse` (and `MeshTag::new`) on arbitrary text: never panics,
//! and whatever it accepts prints back to the same text (one id, one form).
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::{MeshTag, SessionId};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(id) = SessionId::parse(&text) {
        assert_eq!(id.to_string(), text, "accepted a non-canonical id");
        // Debug must not panic either (it slices the text form).
        let _ = format!("{id:?}");
    }
    if let Ok(tag) = MeshTag::new(&text) {
        assert_eq!(tag.as_str(), text);
    }
});
