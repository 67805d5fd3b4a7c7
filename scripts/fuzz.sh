#!/usr/bin/env bash
# Fuzzes every pure parser of scanplane-scanners (crates/scanners/fuzz, cargo-fuzz and
# libFuzzer) for SECONDS_PER_TARGET seconds each (default 20), and prints one line per parser.
# One fuzz target, `parsers`, serves them all: it lists the crate's registered parsers and
# fuzzes the one SCANPLANE_FUZZ_PARSER names, so a newly registered parser is fuzzed here
# without any change to this script or to the fuzz crate.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Installs cargo-fuzz when it is missing. Runs on the stable toolchain: cargo-fuzz passes
# unstable compiler flags, which RUSTC_BOOTSTRAP=1 lets stable accept. No sanitizer is used
# by default (the parsers are safe Rust, where a bug shows as a panic, which libFuzzer catches
# without one); set FUZZ_SANITIZER=address to add AddressSanitizer. Corpora grow across runs
# in the fuzz target directory, seeded from crates/scanners/tests/data/<parser>/; a crashing
# input is saved under that directory's artifacts/<parser>/ and the script exits 1. Replay one
# with: SCANPLANE_FUZZ_PARSER=<parser> cargo fuzz run parsers <artifact> (in crates/scanners/fuzz).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
fuzz_dir="$root/crates/scanners/fuzz"
data_dir="$root/crates/scanners/tests/data"

secs=${1:-20}
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET]  (a positive whole number, got '$secs')" >&2
  exit 2
fi
sanitizer=${FUZZ_SANITIZER:-none}
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/scanplane-target}-fuzz"
export RUSTC_BOOTSTRAP=1

log() { printf '==> %s\n' "$*" >&2; }

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

cd "$fuzz_dir"
log "building the fuzz target (sanitizer: $sanitizer) into $target_dir"
build_start=$SECONDS
cargo fuzz build -s "$sanitizer" --target-dir "$target_dir" parsers
log "built in $((SECONDS - build_start)) s"

# The parsers to fuzz, as the crate registers them (the target prints them and exits).
empty_corpus=$(mktemp -d)
trap 'rm -rf "$empty_corpus"' EXIT
mapfile -t targets < <(SCANPLANE_FUZZ_LIST=1 cargo fuzz run -s "$sanitizer" --target-dir "$target_dir" \
  parsers "$empty_corpus" -- -runs=1 2>/dev/null)
if [ "${#targets[@]}" -eq 0 ]; then
  echo "the fuzz target lists no parsers" >&2
  exit 1
fi

failed=0
for t in "${targets[@]}"; do
  # A parser's captured outputs are its fixtures: crates/scanners/tests/data/<parser>/.
  seeds="$data_dir/$t"
  if [ ! -d "$seeds" ]; then
    echo "$t: FAILED: seed directory $seeds is missing" >&2
    failed=1
    continue
  fi
  corpus="$target_dir/corpus/$t"
  artifacts="$target_dir/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  # Seeds are the tool outputs, not their READMEs or helper scripts.
  find "$seeds" -maxdepth 1 -type f ! -name 'README.md' ! -name '*.sh' \
    -exec cp -n {} "$corpus/" \;
  out="$target_dir/$t.log"
  start=$SECONDS
  if SCANPLANE_FUZZ_PARSER="$t" cargo fuzz run -s "$sanitizer" --target-dir "$target_dir" parsers "$corpus" -- \
    -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" >"$out" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -1)
    printf '%s: ok, %s inputs in %s s, corpus %s files\n' \
      "$t" "${runs:-?}" "$((SECONDS - start))" "$(find "$corpus" -type f | wc -l)"
  else
    crash=$(grep -o "Test unit written to .*" "$out" | tail -1 || true)
    printf '%s: FAILED after %s s: %s (log: %s)\n' \
      "$t" "$((SECONDS - start))" "${crash:-see log}" "$out"
    grep -m1 -A3 "panicked at" "$out" >&2 || tail -20 "$out" >&2
    failed=1
  fi
done
exit "$failed"
