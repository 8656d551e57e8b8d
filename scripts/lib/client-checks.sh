#!/usr/bin/env bash
# Third-party clients against the real binaries: identity, program, ticketing, payments
# (with the test kit's fake Stripe), cashless and the gateway are started on free ports against
# fresh databases, then
#   1. Python grpcio (health, reflection v1alpha, Register/Login/GetMe) → identity directly,
#   2. Connect's gRPC-web transport, run by Node (code from protoc-gen-es) → the gateway,
#   3. schemathesis against the gateway's /openapi.json (identity, program, ticketing and
#      payments and cashless behind it), as a fan and as an organiser: no 5xx, responses match the
#      schema, input the schema forbids is refused, operations that declare
#      authentication refuse calls without it.
# Called by scripts/test.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
source scripts/lib/infra.sh

source scripts/lib/pyenv.sh
ensure_pyenv
WEB=scripts/lib/web-client
if [ ! -d "$WEB/node_modules/@connectrpc/connect-web" ]; then
  log "installing the gRPC-web client (npm)"
  (cd "$WEB" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi
(cd "$WEB" && rm -rf gen && npx buf generate ../../../proto --path ../../../proto/festival/identity --path ../../../proto/google/api --template buf.gen.yaml)

cargo build --workspace --bins --locked -q
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ID_PORT=$(free_port)
PG_PORT_PROGRAM=$(free_port)
TK_PORT=$(free_port)
PM_PORT=$(free_port)
CL_PORT=$(free_port)
FS_PORT=$(free_port)
GW_PORT=$(free_port)
NAME="clientcheck$RANDOM$RANDOM"
mkdir -p "$STATE_DIR"
ID_LOG="$STATE_DIR/identity-client-check.log"
GW_LOG="$STATE_DIR/gateway-client-check.log"

IDENTITY__GRPC__LISTEN="127.0.0.1:$ID_PORT" \
IDENTITY__METRICS__ENABLED=false \
IDENTITY__DATABASE__URL="postgres://festival:festival@127.0.0.1:5432/festival_test_$NAME" \
IDENTITY__NATS__SUBJECT_PREFIX="$NAME" \
IDENTITY__GRPC__DRAIN_GRACE_MS=0 \
IDENTITY__REDIS__KEY_PREFIX="$NAME:" \
  target/debug/identity serve >"$ID_LOG" 2>&1 &
ID_PID=$!
PROGRAM__GRPC__LISTEN="127.0.0.1:$PG_PORT_PROGRAM" \
PROGRAM__METRICS__ENABLED=false \
PROGRAM__DATABASE__URL="postgres://festival:festival@127.0.0.1:5432/festival_test_${NAME}_program" \
PROGRAM__NATS__SUBJECT_PREFIX="$NAME" \
PROGRAM__AUTH__IDENTITY_URL="http://127.0.0.1:$ID_PORT" \
  target/debug/program serve >"$STATE_DIR/program-client-check.log" 2>&1 &
PROGRAM_PID=$!
TICKETING__GRPC__LISTEN="127.0.0.1:$TK_PORT" \
TICKETING__METRICS__ENABLED=false \
TICKETING__DATABASE__URL="postgres://festival:festival@127.0.0.1:5432/festival_test_${NAME}_ticketing" \
TICKETING__NATS__SUBJECT_PREFIX="$NAME" \
TICKETING__AUTH__IDENTITY_URL="http://127.0.0.1:$ID_PORT" \
TICKETING__GRPC__DRAIN_GRACE_MS=0 \
TICKETING__PAYMENTS__URL="http://127.0.0.1:$PM_PORT" \
  target/debug/ticketing serve >"$STATE_DIR/ticketing-client-check.log" 2>&1 &
TICKETING_PID=$!
# payments calls the fake Stripe, which sends its signed webhooks through the gateway.
FAKE_STRIPE_ADDR="127.0.0.1:$FS_PORT" \
FAKE_STRIPE_SECRET_KEY=sk_test_festival_dev \
FAKE_STRIPE_WEBHOOK_SECRET=whsec_festival_dev \
FAKE_STRIPE_WEBHOOK_URL="http://127.0.0.1:$GW_PORT/webhooks/stripe" \
  target/debug/fake-stripe >"$STATE_DIR/fake-stripe-client-check.log" 2>&1 &
FAKE_STRIPE_PID=$!
PAYMENTS__GRPC__LISTEN="127.0.0.1:$PM_PORT" \
PAYMENTS__METRICS__ENABLED=false \
PAYMENTS__DATABASE__URL="postgres://festival:festival@127.0.0.1:5432/festival_test_${NAME}_payments" \
PAYMENTS__NATS__SUBJECT_PREFIX="$NAME" \
PAYMENTS__AUTH__IDENTITY_URL="http://127.0.0.1:$ID_PORT" \
PAYMENTS__GRPC__DRAIN_GRACE_MS=0 \
PAYMENTS__STRIPE__API_BASE="http://127.0.0.1:$FS_PORT/" \
PAYMENTS__STRIPE__SECRET_KEY=sk_test_festival_dev \
PAYMENTS__STRIPE__WEBHOOK_SECRETS=whsec_festival_dev \
  target/debug/payments serve >"$STATE_DIR/payments-client-check.log" 2>&1 &
PAYMENTS_PID=$!
CASHLESS__GRPC__LISTEN="127.0.0.1:$CL_PORT" \
CASHLESS__METRICS__ENABLED=false \
CASHLESS__DATABASE__URL="postgres://festival:festival@127.0.0.1:5432/festival_test_${NAME}_cashless" \
CASHLESS__NATS__SUBJECT_PREFIX="$NAME" \
CASHLESS__AUTH__IDENTITY_URL="http://127.0.0.1:$ID_PORT" \
CASHLESS__GRPC__DRAIN_GRACE_MS=0 \
CASHLESS__PAYMENTS__URL="http://127.0.0.1:$PM_PORT" \
  target/debug/cashless serve >"$STATE_DIR/cashless-client-check.log" 2>&1 &
CASHLESS_PID=$!
GATEWAY__LISTEN="127.0.0.1:$GW_PORT" \
GATEWAY__UPSTREAMS__IDENTITY="http://127.0.0.1:$ID_PORT" \
GATEWAY__UPSTREAMS__PROGRAM="http://127.0.0.1:$PG_PORT_PROGRAM" \
GATEWAY__UPSTREAMS__TICKETING="http://127.0.0.1:$TK_PORT" \
GATEWAY__UPSTREAMS__PAYMENTS="http://127.0.0.1:$PM_PORT" \
GATEWAY__UPSTREAMS__CASHLESS="http://127.0.0.1:$CL_PORT" \
GATEWAY__REDIS__KEY_PREFIX="$NAME:" \
GATEWAY__RATE_LIMIT__ENABLED=false \
  target/debug/gateway >"$GW_LOG" 2>&1 &
GW_PID=$!
trap 'kill $ID_PID $PROGRAM_PID $TICKETING_PID $PAYMENTS_PID $CASHLESS_PID $FAKE_STRIPE_PID $GW_PID 2>/dev/null || true; wait $ID_PID $PROGRAM_PID $TICKETING_PID $PAYMENTS_PID $CASHLESS_PID $FAKE_STRIPE_PID $GW_PID 2>/dev/null || true' EXIT
show_logs() { echo "--- identity log ---" >&2; tail -30 "$ID_LOG" >&2; echo "--- gateway log ---" >&2; tail -30 "$GW_LOG" >&2; }

"$VENV/bin/python" scripts/lib/grpc_client_check.py "127.0.0.1:$ID_PORT" || { show_logs; exit 1; }
(cd "$WEB" && node client.mjs "http://127.0.0.1:$GW_PORT") || { show_logs; exit 1; }

log "schemathesis against http://127.0.0.1:$GW_PORT/openapi.json (a fan, then an organiser)"
# Two callers, so the operations behind authentication are explored with both a fan's and
# an organiser's rights: a signed-in fan, and an organiser whose token carries the
# ORGANIZER membership of a festival they created (identity grants it from program's
# festival.created event). DeleteMe and LogoutAll would end the session half-way; the
# integration tests cover them. Ticketing's hold and order commands (CreateHold,
# CheckoutHold, CreateOrder, CancelOrder) require an `idempotency_key`: schemathesis
# generates one like any other field; a missing or malformed one is a 400, a repeated one
# replays the first answer (or, for another request, ERR_1006), never a 5xx.
TOKENS=$("$VENV/bin/python" - "http://127.0.0.1:$GW_PORT" <<'PY'
import json, sys, time, urllib.request, uuid
base = sys.argv[1]
def post(path, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, json.dumps(body).encode(), headers)
    return json.load(urllib.request.urlopen(req))
def account():
    creds = {"email": f"st-{uuid.uuid4().hex[:10]}@example.org", "password": "correct horse battery staple"}
    post("/v1/auth/register", creds)
    return creds, post("/v1/auth/login", creds)
_, fan = account()
creds, organiser = account()
year = time.gmtime().tm_year + 1
post("/v1/festivals", {"name": "Schemathesis Fest", "slug": f"st-{uuid.uuid4().hex[:8]}", "timeZone": "Europe/Paris",
                       "currency": "EUR", "startTime": f"{year}-07-09T12:00:00+02:00",
                       "endTime": f"{year}-07-12T04:00:00+02:00", "capacity": 1000}, organiser["accessToken"])
for _ in range(100):
    organiser = post("/v1/auth/login", creds)
    if any(m.get("role") == "ROLE_ORGANIZER" for m in organiser["user"].get("memberships", [])):
        break
    time.sleep(0.2)
else:
    sys.exit("identity never granted ORGANIZER for the new festival")
print(fan["accessToken"], organiser["accessToken"])
PY
)
read -r FAN_TOKEN ORGANISER_TOKEN <<<"$TOKENS"
# not_a_server_error: no 5xx; response_schema_conformance: answers match the document;
# negative_data_rejection: input the schema forbids is refused (4xx), never accepted;
# ignored_auth: an operation that declares authentication refuses a call without it.
for token in "$FAN_TOKEN" "$ORGANISER_TOKEN"; do
  "$VENV/bin/schemathesis" run "http://127.0.0.1:$GW_PORT/openapi.json" \
    --header "Authorization: Bearer $token" \
    --exclude-operation-id IdentityService_DeleteMe --exclude-operation-id IdentityService_LogoutAll \
    --checks not_a_server_error,response_schema_conformance,negative_data_rejection,ignored_auth \
    --max-examples 25 --no-color || { show_logs; exit 1; }
done

kill -TERM $ID_PID $PROGRAM_PID $TICKETING_PID $PAYMENTS_PID $CASHLESS_PID $FAKE_STRIPE_PID $GW_PID
wait $PROGRAM_PID || { echo "program did not exit cleanly on SIGTERM" >&2; exit 1; }
wait $TICKETING_PID || { echo "ticketing did not exit cleanly on SIGTERM" >&2; tail -20 "$STATE_DIR/ticketing-client-check.log" >&2; exit 1; }
wait $PAYMENTS_PID || { echo "payments did not exit cleanly on SIGTERM" >&2; tail -20 "$STATE_DIR/payments-client-check.log" >&2; exit 1; }
wait $CASHLESS_PID || { echo "cashless did not exit cleanly on SIGTERM" >&2; tail -20 "$STATE_DIR/cashless-client-check.log" >&2; exit 1; }
wait $FAKE_STRIPE_PID 2>/dev/null || true
wait $ID_PID || { echo "identity did not exit cleanly on SIGTERM" >&2; tail -20 "$ID_LOG" >&2; exit 1; }
wait $GW_PID || { echo "the gateway did not exit cleanly on SIGTERM" >&2; tail -20 "$GW_LOG" >&2; exit 1; }
trap - EXIT
grep -q '"message":"draining"' "$ID_LOG" || { echo "identity did not drain on SIGTERM" >&2; exit 1; }
