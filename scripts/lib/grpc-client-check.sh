#!/usr/bin/env bash
# Starts the identity binary on free ports against a fresh database and runs the Python
# grpcio client check against it. Called by scripts/test.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
source scripts/lib/infra.sh

VENV="$STATE_DIR/pyenv"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import grpc, grpc_health, grpc_reflection, grpc_status' 2>/dev/null; then
  log "installing grpcio, grpcio-health-checking, grpcio-reflection, grpcio-status (pip, into $VENV)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check grpcio grpcio-health-checking grpcio-reflection grpcio-status
fi

cargo build --workspace --bins --locked -q
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
NAME="clientcheck$RANDOM$RANDOM"
LOG="$STATE_DIR/identity-client-check.log"
mkdir -p "$STATE_DIR"

IDENTITY__GRPC__LISTEN="127.0.0.1:$PORT" \
IDENTITY__METRICS__LISTEN="127.0.0.1:$(free_port)" \
IDENTITY__DATABASE__URL="postgres://festival:festival@127.0.0.1:5432/festival_test_$NAME" \
IDENTITY__NATS__SUBJECT_PREFIX="$NAME" \
IDENTITY__GRPC__DRAIN_GRACE_MS=0 \
  target/debug/identity serve >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT

if ! "$VENV/bin/python" scripts/lib/grpc_client_check.py "127.0.0.1:$PORT"; then
  echo "--- identity log ($LOG) ---" >&2; tail -50 "$LOG" >&2
  exit 1
fi
kill -TERM $PID
wait $PID || { echo "identity did not exit cleanly on SIGTERM" >&2; tail -20 "$LOG" >&2; exit 1; }
trap - EXIT
grep -q '"message":"draining"' "$LOG" || { echo "identity did not drain on SIGTERM" >&2; exit 1; }
