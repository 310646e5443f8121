#!/usr/bin/env bash
# Measure this gateway beside LiteLLM with the shared harness (../shared/bench), in one sitting.
# Starts gunicorn (2 gevent workers, auth and request logging on, SQLite in a temp dir),
# creates a user, key and credit, runs run-all.sh with the gateway as the extra target, stops it.
# Env: HARNESS (default ../shared/bench), WORKERS (2), PORT (8100), plus run-all.sh's own
# (PEERS, REPS, DURATION, CONCS, OUT ...).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
HARNESS="${HARNESS:-$ROOT/../shared/bench}"
PORT="${PORT:-8100}"
STATE="$(mktemp -d "${TMPDIR:-/tmp}/gw-bench-gateway.XXXXXX")"
export DATABASE_URL="sqlite:///$STATE/gateway.sqlite"
export GATEWAY_CONFIG="$ROOT/bench/gateway.toml"
export SECRET_KEY="bench-only-secret" GATEWAY_ENCRYPTION_KEYS="$(python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
cd "$ROOT"

flask --app app users create bench --password bench-password >/dev/null
KEY="$(flask --app app keys create --user bench --name bench | tail -n 1)"
flask --app app credits grant --user bench --amount 1000000 >/dev/null     # priced model: billing is on the measured path

GATEWAY_WORKERS="${WORKERS:-2}" setsid gunicorn -b "127.0.0.1:$PORT" wsgi:app >"$STATE/gunicorn.log" 2>&1 &
GPID=$!
trap 'kill -TERM -- -$GPID 2>/dev/null || true; wait $GPID 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v1/models" -H "Authorization: Bearer $KEY" >/dev/null && break; sleep 0.2; done

TARGET_NAME="${TARGET_NAME:-llm-gateway}" "$HARNESS/run-all.sh" "http://127.0.0.1:$PORT/v1" "$KEY" bench-model
echo "request log rows: $(python3 -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from request_logs').fetchone()[0])" "$STATE/gateway.sqlite")"
