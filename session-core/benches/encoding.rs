//! Which self-describing encoding session values use: JSON (serde_json) or
//! MessagePack with named fields (rmp-serde `to_vec_named`), measured on
//! typical values: a u64 counter, a 10-field struct (a logged-in user), and
//! a 1 KiB string. Each benchmark is one encode plus one decode; the encoded
//! sizes are printed before the runs.
//!
//! Run: `cargo bench -p session-core --bench encoding -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_main, Criterion};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// What an app typically keeps after login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    email: String,
    roles: Vec<String>,
    admin: bool,
    locale: String,
    theme: String,
    logged_in_at: i64,
    cart_items: u32,
    csrf: String,
}

fn user() -> User {
    User {
        id: 1_234_567,
        name: "Alice Example".into(),
        email: "alice@example.com".into(),
        roles: vec!["customer".into(), "beta".into()],
        admin: false,
        locale: "en-GB".into(),
        theme: "dark".into(),
        logged_in_at: 1_700_000_000,
        cart_items: 3,
        csrf: "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6".into(),
    }
}

fn json_round<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let bytes = serde_json::to_vec(value).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn msgpack_round<T: Serialize + DeserializeOwned>(value: &T) -> T {
    let bytes = rmp_serde::to_vec_named(value).unwrap();
    rmp_serde::from_slice(&bytes).unwrap()
}

fn bench_one<T: Serialize + DeserializeOwned>(c: &mut Criterion, name: &str, value: &T) {
    let json = serde_json::to_vec(value).unwrap().len();
    let msgpack = rmp_serde::to_vec_named(value).unwrap().len();
    println!("size {name}: json {json} B, msgpack {msgpack} B");
    let mut group = c.benchmark_group(format!("encoding/{name}"));
    group.bench_function("json", |b| {
        b.iter(|| black_box(json_round(black_box(value))))
    });
    group.bench_function("msgpack", |b| {
        b.iter(|| black_box(msgpack_round(black_box(value))))
    });
    group.finish();
}

fn encoding_bench(c: &mut Criterion) {
    bench_one(c, "u64", &1_700_000_000_000u64);
    bench_one(c, "struct10", &user());
    bench_one(c, "string1k", &"x".repeat(1024));
}

// The macro generates an undocumented function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::encoding_bench);
}
criterion_main!(group::benches);
