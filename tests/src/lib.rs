//! Cross-crate integration test helpers for raft-sessions.
