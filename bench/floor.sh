#!/usr/bin/env bash
# The stack's floor (bench/floor.py) beside nothing else: for each upstream client, 2 gevent workers,
# c=32 non-stream for DURATION seconds against the shared harness's fake upstream; prints one line each
# with req/s, p50/p99 and the CPU per request of all the server's processes.
# Env: DURATION (10), CONC (32), HARNESS (../shared/bench), PORT (8170).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/../shared/bench}" DURATION="${DURATION:-10}" CONC="${CONC:-32}" PORT="${PORT:-8170}"
curl -fs http://127.0.0.1:18080/health >/dev/null || "$HARNESS/upstream/start.sh" >/dev/null
cpu() { python3 "$HARNESS/lib/procmem.py" --port "$PORT" --no-pss | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_s"])'; }
for client in none urllib3 requests geventhttpclient; do
  FLOOR_CLIENT="$client" gunicorn -w 2 -k gevent --worker-connections 1000 -b "127.0.0.1:$PORT" --chdir "$ROOT/bench" \
    floor:app >/dev/null 2>&1 &
  server=$!
  for _ in $(seq 50); do curl -fs -o /dev/null -X POST "http://127.0.0.1:$PORT/v1/chat/completions" \
    -H 'content-type: application/json' -d '{"model":"bench-model","messages":[]}' && break; sleep 0.2; done
  "$HARNESS/load/load.sh" "http://127.0.0.1:$PORT/v1" - bench-model "$CONC" 3 no >/dev/null 2>&1     # warm-up
  before="$(cpu)"
  result="$("$HARNESS/load/load.sh" "http://127.0.0.1:$PORT/v1" - bench-model "$CONC" "$DURATION" no 2>/dev/null | tail -n 1)"
  after="$(cpu)"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(json.dumps({"client": sys.argv[4], "rps": r["rps"], "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "cpu_ms_per_req": round((float(sys.argv[3])-float(sys.argv[2]))*1000/max(1,r["requests"]),3)}))' \
    "$result" "$before" "$after" "$client"
  kill "$server"; wait "$server" 2>/dev/null || true
done
