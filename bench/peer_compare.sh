#!/bin/bash
# The sequence of the peer's run_all.sh (../shared/bench/django_helpdesk_peer), against
# Servicecycle on its embedded PostgreSQL: writes from an empty database (4k tickets), bulk load
# to 10k, reads, bulk load to 100k, reads, writes at ~100k. Run it right after the peer's
# run_all.sh, then bench/peer_ratios.py. Writes only under $SC_BENCH_DIR (default
# /tmp/bench-desk-sc), serves on 127.0.0.1:$SC_PORT (default 8420) and stops the server with
# SIGINT at the end.
#
#   bench/peer_compare.sh && .venv/bin/python bench/peer_ratios.py --peer /tmp/peer-bench/runs
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=$REPO/.venv/bin/python
B=${SC_BENCH_DIR:-/tmp/bench-desk-sc}
PORT=${SC_PORT:-8420}
rm -rf "$B/data" "$B/runs"
mkdir -p "$B/runs"

# teams, agents and an API token in an empty, migrated database (no tickets, no customers)
$PY "$REPO/bench/bulk_load.py" --data-dir "$B/data" --tickets 0 --customers 0 \
  --manifest "$B/manifest-empty.json"
TOK=$($PY -c "import json,sys;print(json.load(open(sys.argv[1]))['token'])" "$B/manifest-empty.json")

SERVICECYCLE_DATA_DIR="$B/data" SERVICECYCLE_LOG_FORMAT=json setsid \
  "$REPO/.venv/bin/servicecycle" serve --host 127.0.0.1 --port "$PORT" > "$B/server.log" 2>&1 &
SERVER=$!
stop() { kill -INT "$SERVER" 2>/dev/null && wait "$SERVER" || true; }
trap stop EXIT
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/healthz" > /dev/null && break
  sleep 0.5
done

cd "$B/runs"
WL="$PY $REPO/bench/peer_workload.py --system servicecycle --base-url http://127.0.0.1:$PORT"
COMMON="--token $TOK --queue support --phase-time-limit 110"
m() { echo "$(date +%s) $1 $2" >> marks.txt; }
bulk() { $PY "$REPO/bench/bulk_load.py" --data-dir "$B/data" --tickets "$1" \
  --messages-per-ticket 3 --manifest "$B/manifest-$2.json"; }

m start sc-writes
$WL $COMMON --phases seed,replies,status --tickets 4000 --customers 200 --status-changes 2000 \
  --state state_sc.json --out sc_writes.json --label "servicecycle, empty DB -> 4k API-created tickets" \
  > /dev/null 2> sc_writes.err
m end sc-writes
m start bulk10k; bulk 6000 10k; m end bulk10k   # 4k made through the API + 6k = 10k
m start sc-10k-reads
$WL $COMMON --phases list,search,reports --latency-samples 50 --report-repeats 3 \
  --state state_sc.json --out sc_10k.json --label "servicecycle, 10k tickets" > /dev/null 2> sc_10k.err
m end sc-10k-reads
m start bulk100k; bulk 90000 100k; m end bulk100k
m start sc-100k-reads
$WL $COMMON --phases list,search,reports --latency-samples 50 --report-repeats 3 \
  --state state_sc.json --out sc_100k.json --label "servicecycle, 100k tickets" > /dev/null 2> sc_100k.err
m end sc-100k-reads
m start sc-100k-writes
$WL $COMMON --phases seed,replies,status --tickets 1500 --customers 0 --status-changes 500 \
  --state state_sc100k.json --out sc_100k_writes.json --label "servicecycle, writes at ~100k tickets" \
  > /dev/null 2> sc_100k_writes.err
m end sc-100k-writes
echo "results in $B/runs"
