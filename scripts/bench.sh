#!/usr/bin/env bash
# lipcast's benchmarks: builds in release mode, installs what they need (wrk, the test venv, the pinned
# artifacts), then runs them in a network namespace of their own and prints the table. Needs root.
#
#   scripts/bench.sh                 everything, 5 runs per figure (about 20 minutes on 2 cores)
#   scripts/bench.sh --quick         a shorter pass
#   scripts/bench.sh --only capacity,stages
#
# Run it on a quiet machine: anything else using the CPU shows up in the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "bench.sh: needs root (network namespaces)" >&2
  exit 1
fi
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
command -v taskset >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq util-linux >/dev/null; }
# The same set-up the tests use (wheels, venv, espeak-ng, the pinned livekit-server), without running the tests.
scripts/setup.sh
scripts/livekit-server.sh >/dev/null
command -v espeak-ng >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null; }
want=$(sha256sum tests/room/requirements.txt | cut -c1-16)
if [ ! -x .venv-test/bin/python ] || [ "$(cat .venv-test/.stamp 2>/dev/null)" != "$want" ]; then
  rm -rf .venv-test && python3 -m venv .venv-test
  .venv-test/bin/pip install --quiet --disable-pip-version-check -r tests/room/requirements.txt
  echo "$want" > .venv-test/.stamp
fi
cargo build --release --locked --bins
exec target/release/lipcast-bench "$@"
