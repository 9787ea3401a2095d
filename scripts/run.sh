#!/usr/bin/env bash
# Sets up and runs the server on its embedded defaults: the pinned run-time artifacts (scripts/setup.sh),
# a release build of the workspace's binaries, the supervisor *and* the worker it starts among them
# (`cargo run --bin lipcast-supervisor` alone would build only the supervisor's package; the build is the one
# scripts/test.sh makes, so after the tests nothing is rebuilt), then the supervisor in the foreground.
#
#   scripts/run.sh                  port 8089, CPU, the built-in model pack, ./data
#   scripts/run.sh --help           every setting (flags and environment variables)
#   PORT=9000 scripts/run.sh        settings come from the environment or the flags
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked --workspace --bins
exec "${CARGO_TARGET_DIR:-target}/release/lipcast-supervisor" "$@"
