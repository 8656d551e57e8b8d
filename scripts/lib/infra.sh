# Shared by scripts/up and scripts/test: make sure PostgreSQL, Redis and NATS (JetStream)
# listen on localhost. Uses them when already up; on Debian installs and starts them;
# elsewhere stops with a message saying what to start.
#
# Sourced, not executed. Needs: REPO (repository root).

STATE_DIR="${FESTIVAL_STATE_DIR:-$REPO/.state}"
PG_PORT=5432
REDIS_PORT=6379
NATS_PORT=4222

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 what=$2 i
  for i in $(seq 1 100); do
    port_open "$port" && return 0
    sleep 0.2
  done
  die "$what did not start listening on 127.0.0.1:$port (logs in $STATE_DIR)"
}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else die "need root to run: $*"; fi; }

apt_install() {
  command -v apt-get >/dev/null || die "PostgreSQL, Redis and NATS are not running and this is not a Debian system: start them yourself on 127.0.0.1:$PG_PORT, :$REDIS_PORT and :$NATS_PORT (NATS with -js), or see docs/CONFIGURATION.md"
  log "installing $* (apt)"
  if [ -z "${APT_UPDATED:-}" ]; then as_root apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_postgres() {
  if ! port_open $PG_PORT; then
    # The client alone (psql) is common; the server binary is what matters.
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null || apt_install postgresql
    local version
    version=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -1 | cut -d/ -f5)
    [ -n "$version" ] || die "no PostgreSQL server found under /usr/lib/postgresql"
    if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -q "^$version main$"; then
      as_root pg_createcluster "$version" main >/dev/null
    fi
    log "starting PostgreSQL $version"
    # pg_ctlcluster switches to the cluster owner (postgres): the server refuses to run as root.
    as_root pg_ctlcluster "$version" main start
    wait_port $PG_PORT PostgreSQL
  fi
  # The development role every service and test uses (createdb: tests make their own databases).
  if command -v psql >/dev/null && id postgres >/dev/null 2>&1; then
    as_root runuser -u postgres -- psql -qtAc "select 1 from pg_roles where rolname = 'festival'" 2>/dev/null | grep -q 1 ||
      as_root runuser -u postgres -- psql -qc "create role festival login createdb password 'festival'" >/dev/null
  fi
}

ensure_redis() {
  port_open $REDIS_PORT && return 0
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting Redis"
  mkdir -p "$STATE_DIR"
  redis-server --port $REDIS_PORT --bind 127.0.0.1 --daemonize yes --save '' --appendonly no \
    --logfile "$STATE_DIR/redis.log" --dir "$STATE_DIR" >/dev/null
  wait_port $REDIS_PORT Redis
}

ensure_nats() {
  port_open $NATS_PORT && return 0
  command -v nats-server >/dev/null || apt_install nats-server
  log "starting NATS with JetStream"
  mkdir -p "$STATE_DIR/nats"
  nohup nats-server -js -a 127.0.0.1 -p $NATS_PORT -sd "$STATE_DIR/nats" >"$STATE_DIR/nats.log" 2>&1 &
  wait_port $NATS_PORT NATS
}

# The platform's fixed ports (gRPC 50051…, metrics 51051…, the gateway, the fake Stripe)
# lie inside Linux's ephemeral range (32768-60999): a service's connection to NATS or
# PostgreSQL can be given one of them as its local port, and the service meant to listen
# there then fails with "address already in use" (it happened to payments once cashless
# joined). Reserve them where the kernel lets us (root, as on CI); elsewhere say how.
reserve_ports() {
  local ports="8080,12111,50050-50070,51050-51070" file=/proc/sys/net/ipv4/ip_local_reserved_ports
  [ -r "$file" ] || return 0
  [ "$(cat "$file")" = "$ports" ] && return 0
  if [ -w "$file" ] && echo "$ports" >"$file" 2>/dev/null; then
    log "reserved the platform's ports ($ports) from the kernel's ephemeral range"
  else
    log "note: the platform's ports are not reserved from the ephemeral range; as root: echo $ports > $file"
  fi
}

ensure_infra() {
  reserve_ports
  ensure_postgres
  ensure_redis
  ensure_nats
  # Tests start private nats-servers of their own: the binary must exist even if NATS was already up.
  command -v nats-server >/dev/null || apt_install nats-server
  # Ticketing's wallet-pass test makes a certificate chain and verifies signatures with it.
  command -v openssl >/dev/null || apt_install openssl
}
