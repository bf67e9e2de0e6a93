#!/bin/sh
# Fuzz load + validate + render: `fuzz/run.sh [SECONDS]` (default 1800).
# Seeds come from the bad-input corpus and the example fleet; findings land
# in fuzz/artifacts/compile/ (add each to tests/bad/ once fixed).
# Runs on the stable toolchain: cargo-fuzz needs nightly flags, which
# RUSTC_BOOTSTRAP=1 allows.
set -eu
cd "$(dirname "$0")"
seconds="${1:-1800}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
corpus=corpus/compile
mkdir -p "$corpus"
# Seeds: every site file of the corpus and the fleet, pointed at the
# fuzz root's profile `base` so that they reach validation and rendering.
for f in ../tests/bad/*/*/sites/*.toml ../tests/bad/_base/sites/*.toml ../sites/*.toml; do
  [ -f "$f" ] || continue
  sed 's/^profile = .*/profile = "base"/' "$f" > "$corpus/seed-$(sha256sum "$f" | cut -c1-16)"
done
# Profiles paired with a site (profile, separator, site).
for p in ../tests/bad/*/*/profiles/*.toml ../profiles/*.toml; do
  [ -f "$p" ] || continue
  { cat "$p"; printf '\n%%%%\n'; printf 'profile = "edge"\n[network]\nlan = "10.1.0.0/24"\naddress = "10.1.0.10"\n'; } > "$corpus/pair-$(sha256sum "$p" | cut -c1-16)"
done
RUSTC_BOOTSTRAP=1 exec cargo fuzz run compile "$corpus" -- \
  -max_total_time="$seconds" -max_len=16384 -timeout=10 -print_final_stats=1
