#!/usr/bin/env bash
# One command on a fresh machine: install, make sure RabbitMQ runs, start the worker with the
# shipped model, replay the bundled sample feed and print the tickets routed per queue.
#   bash deploy/quickstart.sh [--keep-running]
set -euo pipefail
cd "$(dirname "$0")/.."
keep=0; [ "${1:-}" = "--keep-running" ] && keep=1

bash deploy/ensure-services.sh rabbitmq
mkdir -p var
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e . >var/pip.log 2>&1 \
  || { cat var/pip.log; exit 1; }

export TRIAGE_HTTP_PORT="${TRIAGE_HTTP_PORT:-8080}"
mkdir -p var
rm -f var/quickstart.db*  # a fresh demo store each run
export TRIAGE_DB_URL="${TRIAGE_DB_URL:-sqlite:///var/quickstart.db}"
metrics="http://127.0.0.1:$TRIAGE_HTTP_PORT/metrics"
feed=triage/samples/feed.jsonl

.venv/bin/triage models list
echo "starting the worker (log: var/worker.log)"
.venv/bin/triage worker >var/worker.log 2>&1 &
worker=$!
trap '[ "$keep" = 1 ] || kill -TERM "$worker" 2>/dev/null || true' EXIT
for _ in $(seq 60); do
  curl -fs "http://127.0.0.1:$TRIAGE_HTTP_PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$worker" 2>/dev/null || { echo "the worker exited:"; tail -n 20 var/worker.log; exit 1; }
  sleep 1
done
curl -fs "http://127.0.0.1:$TRIAGE_HTTP_PORT/readyz"; echo

.venv/bin/triage publish "$feed"
lines=$(grep -c . "$feed")
# wait until every line is accounted for: a ticket, a suppressed duplicate or a dead letter
for _ in $(seq 60); do
  done_count=$(curl -fs "$metrics" | awk '
    /^triage_tickets_routed_total\{/ || /^triage_duplicates_suppressed_total / ||
    /^triage_messages_dead_lettered_total\{/ { s += $NF } END { print int(s) }')
  [ "$done_count" -ge "$lines" ] && break
  sleep 1
done

echo
echo "tickets routed per queue (this run):"
curl -fs "$metrics" | awk -F'[{}"]' '/^triage_tickets_routed_total\{/ && $NF+0 > 0 {
  for (i = 1; i < NF; i++) { if ($i ~ /queue=$/) q = $(i+1); if ($i ~ /category=$/) c = $(i+1) }
  printf "  %-16s %-14s %5d\n", q, c, $NF }' | sort
curl -fs "$metrics" | awk '/^triage_duplicates_suppressed_total / { printf "  duplicates suppressed %d\n", $NF }'
echo "dead-lettered (in triage.dead, with the reason in the headers):"
curl -fs "$metrics" | awk '/^triage_messages_dead_lettered_total\{/ && $NF+0 > 0 {
  split($1, part, "\""); printf "  %-24s %5d\n", part[2], $NF }'
echo
echo "see a queue without losing it:  .venv/bin/triage peek cc.urgent --count 3"
if [ "$keep" = 1 ]; then
  trap - EXIT
  echo "the worker keeps running (pid $worker); metrics at $metrics; stop it with: kill $worker"
else
  echo "stopping the worker (SIGTERM: finishes in-flight work, rejects nothing)"
fi
