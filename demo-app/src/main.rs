//! Demo app.
fn main() {}
