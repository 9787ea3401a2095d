#!/usr/bin/env bash
# Installs the pinned livekit-server (the version the compose demo runs: the image tag in
# deploy/docker-compose.yml is the one place that names it) and prints the binary's path.
#
#   scripts/livekit-server.sh          build if missing, print the path
#
# Built from source with `go install github.com/livekit/livekit-server/cmd/server@<version>` from the Go module
# proxy, checked against Go's checksum database (go.sum / sum.golang.org), into .tools/livekit-server/<version>/
# (git-ignored). Idempotent: when the binary for the pinned version is there, it only prints the path.
# Keep Go's caches (~/go, ~/.cache/go-build) between runs: the cold build takes minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "livekit-server.sh: $*" >&2; }

version=$(sed -n 's|^ *image: livekit/livekit-server:\(v[0-9][0-9.]*\) *$|\1|p' deploy/docker-compose.yml)
if [ -z "$version" ]; then
  say "cannot find the livekit/livekit-server image tag in deploy/docker-compose.yml"
  exit 1
fi
dir=".tools/livekit-server/$version"
bin="$dir/livekit-server"
if [ -x "$bin" ]; then
  echo "$PWD/$bin"
  exit 0
fi

if ! command -v go >/dev/null; then
  say "Go is missing: livekit-server $version is built from source with 'go install' from the Go module proxy;"
  say "install Go >= 1.25 and put it on PATH (e.g. /usr/local/go/bin)"
  exit 1
fi
# livekit-server's go.mod names go 1.25: the machine's Go builds it without fetching a toolchain. A later pin
# whose go.mod names a newer Go needs a newer toolchain; GOTOOLCHAIN may be set by the caller for that.
say "building livekit-server $version with $(go version | cut -d' ' -f3) (minutes on a cold Go cache)"
start=$(date +%s)
mkdir -p "$dir"
# `go install pkg@version` builds in module mode, ignoring any go.mod here, and checks every module it fetches
# against sum.golang.org. v1.11.0's go.mod has no `replace` directives (which `go install` would refuse).
GOBIN="$PWD/$dir" GOFLAGS=-buildvcs=false go install "github.com/livekit/livekit-server/cmd/server@$version"
mv "$dir/server" "$bin"
say "built $bin in $(($(date +%s) - start)) s"
echo "$PWD/$bin"
