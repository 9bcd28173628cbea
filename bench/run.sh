#!/usr/bin/env bash
# Runs the whole benchmark suite on this machine and leaves the figures in
# bench/results/ and the chart in bench/scale.svg (see BENCHMARKS.md).
#
#   bench/run.sh            everything (about 5 minutes on 2 cores, after the build)
#   QUICK=1 bench/run.sh    10k and 100k only, shorter runs
#
# Runs are sequential and bounded in time: the machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ "${QUICK:-}" == 1 ]]; then
  sizes=10000,100000
  seconds=3
else
  sizes=10000,100000,1000000
  seconds=5
fi
mkdir -p bench/results

echo "== machine"
{
  echo "nproc: $(nproc)"
  grep -m1 'model name' /proc/cpuinfo || true
  grep MemTotal /proc/meminfo || true
  uname -sr
  rustc --version
} | tee bench/results/machine.txt

echo "== build (release)"
cargo build --release --bin cedar-sidecar --bin cedar-sidecar-bench

echo "== engine benchmarks (criterion)"
CEDAR_BENCH_SIZES="$sizes" cargo bench -p cedar-sidecar-bench --bench engine -- --noplot 2>&1 | tee bench/results/engine.txt

echo "== startup and scale (one child process per size)"
target/release/cedar-sidecar-bench scale --sizes "$sizes" \
  --json bench/results/scale.json --chart bench/scale.svg | tee bench/results/scale.txt

echo "== HTTP on loopback (100k entities)"
target/release/cedar-sidecar-bench http --entities 100000 --seconds "$seconds" \
  --json bench/results/http.json | tee bench/results/http.txt

echo "== Redis sync: write-to-applied with 1 and 16 replicas, snapshot load"
cargo build --release -p cedar-sidecar-bench --example redis_sync_bench
if [[ "${QUICK:-}" == 1 ]]; then
  target/release/examples/redis_sync_bench --quick | tee bench/results/redis.txt
else
  target/release/examples/redis_sync_bench | tee bench/results/redis.txt
fi

echo "== done: bench/results/, bench/scale.svg"
