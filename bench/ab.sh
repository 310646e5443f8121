#!/usr/bin/env bash
# Interleaved A/B of two checkouts of this gateway on the same machine, in one sitting: both run
# as bench/gateway-up.sh starts them (2 gevent workers, auth, billing, limits, request log), and
# load runs alternate A, B, A, B ... so that the machine's drift hits both alike. Prints one JSON
# line per run (req/s, p50/p99, the gateway's CPU ms per request) and the B/A ratios at the end.
#
# usage: bench/ab.sh A_ROOT B_ROOT      (each a checkout with bench/gateway-up.sh)
# Env: ROUNDS (3), DURATION (10), CONC (32), STREAM (no), HARNESS (../shared/bench),
#      DATABASE_URL_A / DATABASE_URL_B (default: each its own SQLite file; two empty PostgreSQL databases).
set -euo pipefail
A_ROOT="$(cd "$1" && pwd)" B_ROOT="$(cd "$2" && pwd)"
HARNESS="${HARNESS:-$(cd "$(dirname "$0")/.." && pwd)/../shared/bench}"
ROUNDS="${ROUNDS:-3}" DURATION="${DURATION:-10}" CONC="${CONC:-32}" STREAM="${STREAM:-no}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/gw-ab.XXXXXX")"
STARTED_UPSTREAM=""
if ! curl -fs http://127.0.0.1:18080/health >/dev/null; then
  "$HARNESS/upstream/start.sh" >/dev/null && STARTED_UPSTREAM=1
fi

up() {      # root port name [database url]: a gateway in its own shell, stopped by its EXIT trap
  ( PORT="$2"; [[ -n "${4:-}" ]] && export DATABASE_URL="$4"; source "$1/bench/gateway-up.sh"; echo "$KEY" >"$WORK/$3.key"
    sleep infinity & echo $! >"$WORK/$3.sleep"; wait $! ) >"$WORK/$3.log" 2>&1 &
  echo $! >"$WORK/$3.shell"
}
down() {
  for pidfile in "$WORK"/*.shell "$WORK"/*.sleep; do kill "$(cat "$pidfile")" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [[ -n "$STARTED_UPSTREAM" ]] && "$HARNESS/upstream/stop.sh" >/dev/null || true
}
trap down EXIT
up "$A_ROOT" 8101 a "${DATABASE_URL_A:-}"
up "$B_ROOT" 8102 b "${DATABASE_URL_B:-}"
for _ in $(seq 100); do [[ -s "$WORK/a.key" && -s "$WORK/b.key" ]] && break; sleep 0.2; done

cpu() { python3 "$HARNESS/lib/procmem.py" --port "$1" --no-pss | python3 -c 'import json,sys; print(json.load(sys.stdin)["cpu_s"])'; }
run() {     # side port
  local before after result
  before="$(cpu "$2")"
  result="$(LOAD_LABEL="$1" "$HARNESS/load/load.sh" "http://127.0.0.1:$2/v1" "$(cat "$WORK/$1.key")" bench-model \
            "$CONC" "$DURATION" "$STREAM" 2>/dev/null | tail -n 1)"
  after="$(cpu "$2")"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r["cpu_ms_per_req"]=round((float(sys.argv[3])-float(sys.argv[2]))*1000/max(1,r["requests"]),3); print(json.dumps({k: r[k] for k in ("label","conc","stream","rps","p50_ms","p99_ms","errors","cpu_ms_per_req")}))' \
    "$result" "$before" "$after" | tee -a "$WORK/results.jsonl"
}
for side in a b; do     # warm-up
  LOAD_LABEL=warm "$HARNESS/load/load.sh" "http://127.0.0.1:$([[ $side == a ]] && echo 8101 || echo 8102)/v1" \
    "$(cat "$WORK/$side.key")" bench-model "$CONC" 3 "$STREAM" >/dev/null 2>&1
done
for round in $(seq "$ROUNDS"); do
  if (( round % 2 )); then run a 8101; run b 8102; else run b 8102; run a 8101; fi
done
python3 - "$WORK/results.jsonl" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
side = lambda s, k: statistics.median(r[k] for r in rows if r["label"] == s)
for k in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req"):
    print(f"{k}: A {side('a', k)}  B {side('b', k)}  B/A {side('b', k) / side('a', k):.3f}")
EOF
