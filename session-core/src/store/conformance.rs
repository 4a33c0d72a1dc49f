//! Shared conformance suite every store must pass.
