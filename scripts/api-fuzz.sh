#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis (PyPI), against a real
# `scanplane serve` (the debug binary, SQLite in a temporary directory, an admin token), and
# fails on any failure of the checks: no server error, every status code and every response
# body as documented. Bounded: SCANPLANE_API_FUZZ_EXAMPLES cases per operation (default 30)
# and at most SCANPLANE_API_FUZZ_SECONDS seconds in all (default 180).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
examples=${SCANPLANE_API_FUZZ_EXAMPLES:-30}
budget=${SCANPLANE_API_FUZZ_SECONDS:-180}
target_dir=${CARGO_TARGET_DIR:-target}
bin="$target_dir/debug/scanplane"
work=$(mktemp -d /tmp/scanplane-api-fuzz.XXXXXX)
pid=""

log() { printf '==> %s\n' "$*" >&2; }

cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if ! command -v schemathesis >/dev/null 2>&1; then
  log "pip install schemathesis"
  python3 -m pip install -q schemathesis >/dev/null
fi
cargo build -q -p scanplane

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
token="fuzz-admin-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
url="http://127.0.0.1:$port"
SCANPLANE_DATABASE_URL="sqlite://$work/fuzz.db" SCANPLANE_LISTEN="127.0.0.1:$port" \
  SCANPLANE_ADMIN_TOKEN="$token" SCANPLANE_WORK_DIR="$work/units" SCANPLANE_LOG=warn \
  "$bin" serve 2>"$work/serve.log" &
pid=$!
for _ in $(seq 1 300); do
  python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' "$url/readyz" \
    >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done

log "schemathesis against $url ($examples examples per operation, at most ${budget}s)"
status=0
(cd "$work" && SCHEMATHESIS_HOOKS=schemathesis_hooks PYTHONPATH="$root/scripts" timeout --signal=INT $((budget + 60)) schemathesis run "$url/openapi.json" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance \
  --header "Authorization: Bearer $token" \
  --max-examples "$examples" --max-time "$budget" --workers 2 --seed 1 \
  --suppress-health-check all --request-timeout 30) || status=$?
if ! kill -0 "$pid" 2>/dev/null; then
  log "scanplane serve died during the run"; cat "$work/serve.log" >&2; exit 1
fi
if [ "$status" -ne 0 ]; then
  log "schemathesis failed (exit $status); server log:"; tail -n 50 "$work/serve.log" >&2
fi
exit "$status"
