# Source it (bench/run.sh and bench/endpoints.sh do): starts this gateway under gunicorn for a
# benchmark (2 gevent workers, auth, billing and request logging on, SQLite in a temp dir) with a
# user, a key and credit; sets KEY and PORT, and stops the gateway when the calling script exits.
# Env: WORKERS (2), PORT (8100), DATABASE_URL (default: SQLite in the temp dir).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${PORT:-8100}"
STATE="$(mktemp -d "${TMPDIR:-/tmp}/gw-bench-gateway.XXXXXX")"
export DATABASE_URL="${DATABASE_URL:-sqlite:///$STATE/gateway.sqlite}"   # or a PostgreSQL URL to an empty database
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
