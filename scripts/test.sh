#!/usr/bin/env bash
# Installs everything the tests need (idempotently) and runs them all: formatting and lints, unit tests,
# the model tests on the real ONNX Runtime, and the end-to-end tests (real supervisor and worker processes, the
# real livekit-server (built from the Go module proxy: needs Go), livekit-agents with livekit-plugins-bithuman,
# LiveKit's Python SDK, and the LiveKit test room, each in its own network namespace: needs root and iproute2;
# schemathesis against the OpenAPI document; the demo page in Debian's chromium driven by playwright-core).
#
#   scripts/test.sh                 everything
#   scripts/test.sh -E 'test(x)'    extra arguments go to cargo nextest (e.g. a filter)
#   LIPCAST_TEST_MUSETALK=1 scripts/test.sh   also the opt-in full-size MuseTalk 1.5 session (tests/e2e/byo.rs)
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "test.sh: $*" >&2; }
# How long each install and phase took, printed as it ends and summed up at the end.
phase_start=$(date +%s)
phases=()
phase() {
  local now
  now=$(date +%s)
  phases+=("$1: $((now - phase_start)) s")
  say "$1 took $((now - phase_start)) s"
  phase_start=$now
}

if [ "$(id -u)" != 0 ]; then
  echo "test.sh: the end-to-end tests create network namespaces and need root (run with sudo)" >&2
  exit 1
fi

# System packages: espeak-ng (test speech), iproute2 (namespaces), python venv and pip.
missing=()
command -v espeak-ng >/dev/null || missing+=(espeak-ng)
command -v ip >/dev/null || missing+=(iproute2)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

phase "system packages"

# The pinned run-time artifacts (ONNX Runtime, LiveKit's engine and its descriptors).
scripts/setup.sh
phase "pinned artifacts (scripts/setup.sh)"

# The real LiveKit server the end-to-end tests run (the compose demo's version, built with `go install`).
scripts/livekit-server.sh >/dev/null
phase "livekit-server (scripts/livekit-server.sh)"

# The test-side Python: the LiveKit test room (aiortc) and the agent (LiveKit's Python SDK), pinned.
want=$(sha256sum tests/room/requirements.txt | cut -c1-16)
if [ ! -x .venv-test/bin/python ] || [ "$(cat .venv-test/.stamp 2>/dev/null)" != "$want" ]; then
  say "creating .venv-test"
  rm -rf .venv-test
  python3 -m venv .venv-test
  .venv-test/bin/pip install --quiet --disable-pip-version-check -r tests/room/requirements.txt
  echo "$want" > .venv-test/.stamp
fi

# The agent side as voice agents run it (livekit-agents pins its own livekit SDK: a venv of its own).
want=$(sha256sum tests/room/agents-requirements.txt | cut -c1-16)
if [ ! -x .venv-agents/bin/python ] || [ "$(cat .venv-agents/.stamp 2>/dev/null)" != "$want" ]; then
  say "creating .venv-agents"
  rm -rf .venv-agents
  python3 -m venv .venv-agents
  .venv-agents/bin/pip install --quiet --disable-pip-version-check -r tests/room/agents-requirements.txt
  echo "$want" > .venv-agents/.stamp
fi

# schemathesis, for the API test against the OpenAPI document (tests/e2e/openapi.rs), hash-pinned.
want=$(sha256sum tests/api/requirements.txt | cut -c1-16)
if [ ! -x .venv-api/bin/schemathesis ] || [ "$(cat .venv-api/.stamp 2>/dev/null)" != "$want" ]; then
  say "creating .venv-api"
  rm -rf .venv-api
  python3 -m venv .venv-api
  .venv-api/bin/pip install --quiet --disable-pip-version-check --require-hashes -r tests/api/requirements.txt
  echo "$want" > .venv-api/.stamp
fi

# The MuseTalk 1.5 exporter (scripts/packs/musetalk.py: torch, diffusers, transformers, onnx; hash-pinned, and
# --no-deps because the file is the whole closure), run at its reduced size by worker/tests/model_musetalk.rs and
# tests/e2e/byo.rs (byo_musetalk_small_session); scripts/packs/export_wav2lip.py runs in it too
# (worker/tests/model_wav2lip.rs). Measured here: 2.6 GB downloaded, 4.5 GB installed, 145-156 s (unpacking
# dominates: a warm pip cache saves little). LIPCAST_SKIP_MUSETALK=1 skips the install and those tests (they say
# SKIPPED); nothing else does.
if [ "${LIPCAST_SKIP_MUSETALK:-}" = 1 ]; then
  say "LIPCAST_SKIP_MUSETALK=1: .venv-musetalk not installed, the MuseTalk pack tests will be skipped"
else
  want=$(sha256sum scripts/packs/requirements-musetalk.txt | cut -c1-16)
  if [ ! -x .venv-musetalk/bin/python ] || [ "$(cat .venv-musetalk/.stamp 2>/dev/null)" != "$want" ]; then
    say "creating .venv-musetalk"
    rm -rf .venv-musetalk
    python3 -m venv .venv-musetalk
    .venv-musetalk/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
      -r scripts/packs/requirements-musetalk.txt
    echo "$want" > .venv-musetalk/.stamp
  fi
fi
phase "Python venvs"

# The demo page in a real browser (tests/e2e/browser.rs): Debian's chromium (apt checks every package against
# the archive's signed hashes), playwright-core pinned exactly in tests/browser/package-lock.json (sha512
# integrity; playwright-core never downloads a browser, and PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD says so twice),
# and the page's own livekit-client from deploy/web/package-lock.json, installed with `npm ci` as its Dockerfile
# does. Each npm folder is installed again only when its lockfile changes (stamped by the lockfile's hash).
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
node_major=$(node --version 2>/dev/null | sed -n 's/^v\([0-9]*\).*/\1/p')
if [ "${node_major:-0}" -lt 20 ] || ! command -v npm >/dev/null; then
  say "the browser test needs Node.js 20 or newer with npm (playwright-core 1.65); found ${node_major:-none}"
  exit 1
fi
npm_ci() {
  local dir=$1 want
  want=$(sha256sum "$dir/package-lock.json" | cut -c1-16)
  if [ ! -d "$dir/node_modules" ] || [ "$(cat "$dir/node_modules/.stamp" 2>/dev/null)" != "$want" ]; then
    say "installing $dir (npm ci)"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
      --loglevel=error >/dev/null)
    echo "$want" > "$dir/node_modules/.stamp"
  fi
}
npm_ci tests/browser
npm_ci deploy/web
phase "browser (chromium, playwright-core, livekit-client)"

if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
phase "cargo-nextest"

say "format and lints"
cargo fmt --all -- --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings
phase "format and lints"

say "building (release: the real-time tests need optimised code)"
cargo build --release --locked --workspace --bins
phase "build"

say "tests"
cargo nextest run --release --workspace --locked --no-fail-fast "$@"
phase "tests"

# Opt-in: the full-size MuseTalk 1.5 session (an export of ~10 min and ~10 GB here, beyond CI's budget).
if [ "${LIPCAST_TEST_MUSETALK:-}" = 1 ]; then
  say "LIPCAST_TEST_MUSETALK=1: the full-size MuseTalk 1.5 session"
  cargo nextest run --release -p lipcast-e2e --locked --run-ignored only -E 'test(byo_musetalk_full_session)' --no-capture
  phase "full-size MuseTalk session"
fi

if [ -x scripts/validate-deploy.sh ] && [ $# -eq 0 ]; then
  say "deployment files"
  scripts/validate-deploy.sh
  phase "deployment files"
fi
for p in "${phases[@]}"; do say "  $p"; done
say "all green"
