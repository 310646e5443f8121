#!/usr/bin/env bash
# Measure this gateway beside LiteLLM with the shared harness (../shared/bench), in one sitting.
# Starts gunicorn (2 gevent workers, auth and request logging on, SQLite in a temp dir or DATABASE_URL),
# creates a user, key and credit, runs run-all.sh with the gateway as the extra target, stops it.
# Env: HARNESS (default ../shared/bench), WORKERS (2), PORT (8100), plus run-all.sh's own
# (PEERS, REPS, DURATION, CONCS, OUT ...).
set -euo pipefail
HARNESS="${HARNESS:-$(cd "$(dirname "$0")/.." && pwd)/../shared/bench}"
source "$(dirname "$0")/gateway-up.sh"

TARGET_NAME="${TARGET_NAME:-llm-gateway}" "$HARNESS/run-all.sh" "http://127.0.0.1:$PORT/v1" "$KEY" bench-model
if [[ "$DATABASE_URL" == sqlite:* ]]; then
  echo "request log rows: $(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from request_logs').fetchone()[0])" "$STATE/gateway.sqlite")"
fi
