#!/bin/sh
# lipcast-drain: wait until this lipcast has no active session (pending + running), then exit 0.
#
# Installed in the images as /usr/local/bin/lipcast-drain. Kubernetes runs it as the preStop hook: the pod
# has already left the Service's endpoints (no new /launch reaches it), sessions in progress end on their
# own (agent leaves, room closes, SESSION_IDLE_TIMEOUT, MAX_SESSION_SECONDS), and only then does SIGTERM
# reach the supervisor. Before a planned `docker stop`, run `docker exec <container> lipcast-drain` and stop
# routing new launches to that container first.
#
#   DRAIN_TIMEOUT_SECONDS   give up after this long (default: MAX_SESSION_SECONDS, else 3600); exits 0 anyway
#   DRAIN_POLL_SECONDS      seconds between two looks at /health (default 5)
#   PORT                    the supervisor's port (default 8089)
set -u
port=${PORT:-8089}
timeout=${DRAIN_TIMEOUT_SECONDS:-${MAX_SESSION_SECONDS:-3600}}
poll=${DRAIN_POLL_SECONDS:-5}
start=$(date +%s)
while :; do
  body=$(curl -fsS --max-time 3 "http://127.0.0.1:${port}/health" 2>/dev/null) || {
    echo "lipcast-drain: /health not answering; nothing to wait for" >&2
    exit 0
  }
  active=$(printf '%s' "$body" | sed -n 's/.*"active_sessions"[[:space:]]*:[[:space:]]*\([0-9][0-9]*\).*/\1/p')
  if [ -z "$active" ]; then
    echo "lipcast-drain: unexpected /health answer: $body" >&2
    exit 0
  fi
  if [ "$active" -eq 0 ]; then
    echo "lipcast-drain: no active session"
    exit 0
  fi
  elapsed=$(( $(date +%s) - start ))
  if [ "$elapsed" -ge "$timeout" ]; then
    echo "lipcast-drain: $active session(s) still active after ${elapsed}s; giving up" >&2
    exit 0
  fi
  echo "lipcast-drain: $active active session(s), waiting (${elapsed}s of ${timeout}s)"
  sleep "$poll"
done
