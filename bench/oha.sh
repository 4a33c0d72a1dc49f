# Sourced by the bench scripts: installs oha (the load generator) when it is
# missing. native-tls keeps the build light (rustls pulls in aws-lc-sys);
# the benches only talk plain HTTP to 127.0.0.1 anyway.
if ! command -v oha >/dev/null; then
  dpkg -s libssl-dev pkg-config >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq libssl-dev pkg-config; }
  cargo install oha --locked --no-default-features --features native-tls
fi
