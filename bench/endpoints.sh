#!/usr/bin/env bash
# The gateway's added latency and throughput per API family: /v1/chat/completions, /v1/messages
# and /v1/responses, non-stream and stream, against the shared harness's fake upstream (nginx +
# Lua, 127.0.0.1:18080), next to the upstream called directly. Prints a Markdown table.
# Env: HARNESS (default ../shared/bench), DURATION (10 s per run), CONC (32), WORKERS, PORT.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
HARNESS="${HARNESS:-$HERE/../../shared/bench}"
DURATION="${DURATION:-10}" CONC="${CONC:-32}"

"$HARNESS/upstream/start.sh"
trap '"$HARNESS/upstream/stop.sh" >/dev/null 2>&1 || true' EXIT
source "$HERE/gateway-up.sh"
trap 'kill -TERM -- -$GPID 2>/dev/null || true; wait $GPID 2>/dev/null || true; "$HARNESS/upstream/stop.sh" >/dev/null 2>&1 || true' EXIT

# run URL BODY KEY CONNECTIONS: one bounded wrk run; prints its WRKJSON line
run() {
  BENCH_BODY="$HERE/endpoints/$2.json" BENCH_KEY="$3" timeout -k 5 $((DURATION + 30)) \
    wrk -t "$(( $4 >= 2 ? 2 : 1 ))" -c "$4" -d "${DURATION}s" --latency -s "$HERE/endpoint.lua" "$1" \
    | sed -n 's/^WRKJSON //p'
}
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "| endpoint | mode | p50 c=1 (ms) | added p50 c=1 (ms) | req/s c=$CONC | p99 c=$CONC (ms) | errors |"
echo "|---|---|---|---|---|---|---|"
for mode in "" "-stream"; do
  direct="$(run "http://127.0.0.1:18080/v1/chat/completions" "chat$mode" "" 1)"
  base="$(field "$direct" p50_ms)" label="${mode:+stream}"
  for family in chat:chat/completions messages:messages responses:responses; do
    one="$(run "http://127.0.0.1:$PORT/v1/${family#*:}" "${family%%:*}$mode" "$KEY" 1)"
    many="$(run "http://127.0.0.1:$PORT/v1/${family#*:}" "${family%%:*}$mode" "$KEY" "$CONC")"
    added="$(python3 -c "print(f'{$(field "$one" p50_ms) - $base:.2f}')")"
    errors=$(( $(field "$one" errors) + $(field "$many" errors) ))
    echo "| /v1/${family#*:} | ${label:-non-stream} | $(field "$one" p50_ms) | $added | $(field "$many" rps) | $(field "$many" p99_ms) | $errors |"
  done
done
