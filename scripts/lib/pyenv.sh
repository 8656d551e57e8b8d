# The Python virtualenv of the check scripts (sourced after infra.sh). Pinned where the
# command-line behaviour matters.
VENV="$STATE_DIR/pyenv"
PY_PACKAGES=(grpcio grpcio-health-checking grpcio-reflection grpcio-status opentelemetry-proto pyyaml
  schemathesis==4.32.5 helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 icalendar==7.3.2 sepaxml==2.7.0)

ensure_pyenv() {
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import grpc, grpc_health, grpc_reflection, grpc_status, yaml, helm_python, opentelemetry.proto, icalendar, sepaxml, xmlschema' 2>/dev/null \
     && [ -x "$VENV/bin/schemathesis" ] && [ -x "$VENV/bin/kubernetes-validate" ]; then
    return 0
  fi
  log "installing the Python check tools (pip, into $VENV): ${PY_PACKAGES[*]}"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
}
