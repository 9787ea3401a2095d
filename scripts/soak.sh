#!/usr/bin/env bash
# Soak: many short sessions back to back (default 1000) through the real supervisor, workers and LiveKit test
# room, in a network namespace of its own. Prints the supervisor's RSS, descriptors and threads, the workers'
# count and memory, the task history and the database size at the start, every tenth of the way and at the
# end, and fails if processes, descriptors or memory grew or the history passed MAX_TASK_HISTORY. Needs root.
#
#   scripts/soak.sh              1000 sessions, MAX_TASK_HISTORY=200 (so pruning is exercised)
#   scripts/soak.sh 200 100      200 sessions, MAX_TASK_HISTORY=100
#
# About 2 s per session on 2 cores. It is the `workers_cycles_and_warm_pool` test at soak length (CI runs it
# with 30 cycles).
set -euo pipefail
cd "$(dirname "$0")/.."
cycles=${1:-1000}
history=${2:-200}
if [ "$(id -u)" != 0 ]; then
  echo "soak.sh: needs root (network namespaces)" >&2
  exit 1
fi
[ -x .venv-test/bin/python ] || { echo "soak.sh: run scripts/test.sh once first (it creates .venv-test)" >&2; exit 1; }
scripts/setup.sh
cargo build --release --locked --workspace --bins
echo "soak.sh: $cycles sessions, MAX_TASK_HISTORY=$history"
start=$(date +%s)
LIPCAST_CYCLES=$cycles LIPCAST_MAX_TASK_HISTORY=$history \
  cargo test --release --locked -p lipcast-e2e --test workers -- --exact workers_cycles_and_warm_pool --nocapture \
  | grep --line-buffered -E '^(SOAK|MEASURED)|test result|panicked|FAILED'
echo "soak.sh: done in $(( $(date +%s) - start )) s"
