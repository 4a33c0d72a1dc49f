//! Cross-crate checks for raft-sessions.
//!
//! The README's Rust examples are compiled here as doctests, against the real
//! `session-core` and `session-raft`, so the README cannot drift from the API.

#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
