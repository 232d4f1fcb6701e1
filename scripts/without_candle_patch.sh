#!/usr/bin/env bash
# Builds and tests the workspace WITHOUT the vendored candle-core patch, as a downstream crate
# gets it: `[patch.crates-io]` does not carry over to a crate that depends on `convnet`, so
# such a crate links candle-core 0.11.1 from crates.io (vendor/candle-core/PATCHED.md says
# what the patch changes).
#
#   scripts/without_candle_patch.sh                 # cargo test --release --workspace there, but `ui`
#   scripts/without_candle_patch.sh --bench ARGS... # cargo run --release --example bench_train -- ARGS...
#
# It builds every target of the workspace and runs every test but the compile-fail snapshots
# (`tests/ui.rs`): trybuild checks those in a project of its own, which builds all ~150
# dependencies again in the dev profile, they test the macro's error messages, which
# candle-core's backward pass does not touch, and in the copy their paths come out absolute
# (`/…/without-candle-patch/workspace/tests/ui/…`) so every snapshot mismatches. Time
# measured here on 2 cores under a load of 9-10 from other jobs: ~52 min wall, ~23 min CPU
# for the first run (crates.io candle-core, candle-nn and the workspace's crates and tests
# built again, trybuild's dependencies included; the other release dependencies are reused
# from the target dir; the ui snapshots alone took ~7 min wall of it); once built, a rerun
# takes ~45 s (the tests: 302 pass). Without trybuild's part an idle machine should need
# well under that, estimated 6-10 min; not measured idle.
#
# How: the checkout's files (git's tracked and untracked-but-not-ignored ones, without
# vendor/) are copied to `$TARGET/without-candle-patch/workspace`, the `[patch.crates-io]`
# section is removed from the copy's Cargo.toml, and its Cargo.lock is re-resolved with
# candle-core pinned to the vendored version (0.11.1) from crates.io; the script fails if any
# other locked package changed, so the two builds differ in the patch alone.
#
# Target dir: the checkout's own ($CARGO_TARGET_DIR, else target/). Cargo keys every compiled
# unit by its package and dependencies, so the crates.io candle-core and everything above it
# (candle-nn, the workspace's crates from the copy) are built beside the patched ones and the
# ~270 other dependencies are reused; set CONVNET_UNPATCHED_TARGET_DIR for a separate one (a
# build from scratch). Files cargo copies to the top of the target dir (e.g.
# `release/examples/bench_train`) are those of the last build, patched or not: cargo puts
# them back on the next build of either.
#
# Exits non-zero when the copy fails to build, a test fails, or the lock file changed beyond
# candle-core. Needs git and network access to crates.io (or candle-core 0.11.1 in cargo's
# cache).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"

mode=test
if [ "${1:-}" = "--bench" ]; then
  mode=bench
  shift
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--bench BENCH_TRAIN_ARGS...]" >&2
  exit 2
fi

target="${CARGO_TARGET_DIR:-$repo/target}"
case "$target" in /*) ;; *) target="$repo/$target" ;; esac
copy="$target/without-candle-patch/workspace"
export CARGO_TARGET_DIR="${CONVNET_UNPATCHED_TARGET_DIR:-$target}"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' vendor/candle-core/Cargo.toml | head -1)
if [ -z "$version" ]; then
  echo "error: no version in vendor/candle-core/Cargo.toml" >&2
  exit 1
fi

# A fresh copy each run (mtimes kept, so cargo's fingerprints stay fresh between runs).
rm -rf "$copy"
mkdir -p "$copy"
# Not vendor/, nor a target dir inside the checkout that git does not ignore.
inside="${target#"$repo"/}/"
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do
    case "$f" in vendor/* | "$inside"*) continue ;; esac
    if [ -e "$f" ]; then printf '%s\0' "$f"; fi
  done |
  tar --null -T - -cf - | tar -xf - -C "$copy"

# Drop the `[patch.crates-io]` table: from its header to the next table header.
manifest="$copy/Cargo.toml"
awk '/^\[/ { skip = ($0 ~ /^\[patch\.crates-io\][[:space:]]*$/) } !skip' Cargo.toml >"$manifest"
touch -r Cargo.toml "$manifest"
if grep -v '^[[:space:]]*#' "$manifest" | grep -q '^\[patch\|vendor/candle-core'; then
  echo "error: the copy's Cargo.toml still patches candle-core" >&2
  exit 1
fi

# Re-resolve only candle-core (cargo keeps every other locked version when it fixes up a
# lock file), then pin it to the vendored version from crates.io.
(cd "$copy" && cargo metadata -q --format-version 1 >/dev/null &&
  cargo update -q -p candle-core --precise "$version")
# `name version source` of every locked package; only candle-core may differ.
packages() {
  awk '/^\[\[package\]\]/ { if (n) print n, v, s; n = v = s = "" }
       /^name = /    { n = $3 } /^version = / { v = $3 } /^source = / { s = $3 }
       END { if (n) print n, v, s }' "$1" | sort
}
changed=$(diff <(packages Cargo.lock) <(packages "$copy/Cargo.lock") | grep '^[<>]' || true)
if [ -n "$changed" ] && echo "$changed" | grep -qv '^[<>] "candle-core" '; then
  echo "error: removing the patch changed other locked packages:" >&2
  echo "$changed" >&2
  exit 1
fi
if ! grep -A2 '^name = "candle-core"$' "$copy/Cargo.lock" | grep -q '^source = "registry+'; then
  echo "error: the copy's Cargo.lock does not take candle-core from crates.io" >&2
  exit 1
fi
echo "without the candle patch: candle-core $version from crates.io; workspace copy $copy"

cd "$copy"
case "$mode" in
  bench) cargo run --release --example bench_train -- "$@" ;;
  # `--exact`: skips the test named `ui` only (tests/ui.rs), not every name containing it.
  *) cargo test --release --workspace -- --skip ui --exact ;;
esac
