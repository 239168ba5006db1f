#!/usr/bin/env bash
# Local services for Nova: PostgreSQL and Redis for `make run` and `make test`.
#
# Usage: scripts/services.sh <command>
#
#   ensure-postgres    make a PostgreSQL server available (reuse or start one)
#   ensure-redis       make a Redis server available (reuse or start one)
#   ensure-test-tools  redis-server, redis-cli, initdb, pg_ctl and chromium (for
#                      the admin dashboard's browser test) on this machine,
#                      plus ensure-postgres
#   ensure-bench-tools the same without chromium (the benchmarks and the chaos
#                      tests do not drive a browser)
#   postgres-url       ensure-postgres, then print the admin URL in use
#   redis-url          ensure-redis, then print the Redis URL in use
#   pg-bindir          print the directory holding initdb/pg_ctl
#   run                everything `make run` does, ending in `exec bin/nova serve`
#   status             show which servers would be used
#   stop               stop the private servers started under .data/
#                      (never the system ones)
#
# Progress lines ("==> ...") go to stderr, so that `$(scripts/services.sh
# postgres-url)` captures only the URL.
#
# Environment honoured:
#   DATABASE_URL        use this PostgreSQL as is (nothing is started)
#   REDIS_URL           use this Redis as is (nothing is started)
#   NOVA_FORCE_PRIVATE  =1: ignore servers on 5432/6379, always use the private
#                       ones under .data/
#   NOVA_PG_PORT        port of the private PostgreSQL (default 55432)
#   NOVA_REDIS_PORT     port of the private Redis (default 56379)
#   NOVA_JWT_SECRET     JWT signing secret for `run` (default: generated once
#                       into .data/jwt-secret)
#   NOVA_HTTP_ADDR      listen address for `run` (only used for the printed URL)
set -euo pipefail

PROJECT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$PROJECT/.data"

SYSTEM_PG_PORT=5432
SYSTEM_REDIS_PORT=6379
PRIVATE_PG_PORT="${NOVA_PG_PORT:-55432}"
PRIVATE_REDIS_PORT="${NOVA_REDIS_PORT:-56379}"
FORCE_PRIVATE="${NOVA_FORCE_PRIVATE:-0}"

REDIS_DIR="$DATA/redis"
REDIS_LOG="$DATA/redis.log"
REDIS_PIDFILE="$DATA/redis.pid"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf '==> ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# ---------------------------------------------------------------------------
# packages
# ---------------------------------------------------------------------------

APT_UPDATED=0
apt_install() {
    local sudo=()
    if ! is_root; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            die "need to install '$*' but am neither root nor have sudo; install it by hand"
        fi
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install '$*' by hand (Debian/Ubuntu expected)"
    if [ "$APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    log "apt-get install -y $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# Directory holding initdb and pg_ctl ("" if none).
pg_bindir() {
    local d
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        d="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
        if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
    fi
    # Debian keeps the server binaries off PATH.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
    done
    echo ""
}

need_pg_server_bins() {
    if [ -z "$(pg_bindir)" ]; then
        log "initdb/pg_ctl not found: installing Debian's postgresql"
        apt_install postgresql
        [ -n "$(pg_bindir)" ] || die "postgresql installed but initdb/pg_ctl still not found under /usr/lib/postgresql/*/bin"
    fi
}

need_pg_client_bins() {
    if ! command -v pg_isready >/dev/null 2>&1 || ! command -v psql >/dev/null 2>&1; then
        log "pg_isready/psql not found: installing Debian's postgresql"
        apt_install postgresql
    fi
}

need_redis_bins() {
    if ! command -v redis-server >/dev/null 2>&1; then
        log "redis-server not found: installing Debian's redis-server"
        apt_install redis-server
    fi
    if ! command -v redis-cli >/dev/null 2>&1; then
        log "redis-cli not found: installing Debian's redis-tools"
        apt_install redis-tools
    fi
}

# The browser test of /admin drives Debian's chromium (headless) from Go.
need_chromium() {
    if [ ! -x /usr/bin/chromium ]; then
        log "chromium not found: installing Debian's chromium (for the admin dashboard's browser test)"
        apt_install chromium
        [ -x /usr/bin/chromium ] || die "chromium installed but /usr/bin/chromium is missing"
    fi
}

# ---------------------------------------------------------------------------
# PostgreSQL
# ---------------------------------------------------------------------------

# The private cluster lives in .data/postgres. When we run as root the server
# runs as user postgres (initdb refuses root), which needs to reach that
# directory; if the checkout sits under a private home (e.g. /root, mode 0700)
# it cannot, and the cluster goes to /var/tmp/nova-pg-<hash> instead.
# The location in use is remembered in .data/postgres.path.
PG_OWNER=""
pg_owner() {
    if [ -z "$PG_OWNER" ]; then
        if is_root; then
            id postgres >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
            PG_OWNER=postgres
        else
            PG_OWNER="$(id -un)"
        fi
    fi
    echo "$PG_OWNER"
}

as_pg_owner() {
    if is_root; then
        # cd /: the checkout may not be readable by postgres.
        if command -v runuser >/dev/null 2>&1; then
            (cd / && runuser -u postgres -- "$@")
        else
            (cd / && su postgres -s /bin/sh -c "$(printf '%q ' "$@")")
        fi
    else
        "$@"
    fi
}

# Directory that holds the cluster's data, socket and log when it cannot live
# under .data/ ("" when it can).
pg_external_base() {
    if [ -f "$DATA/postgres.path" ]; then
        cat "$DATA/postgres.path"
        return
    fi
    mkdir -p "$DATA"
    local base=""
    if is_root; then
        pg_owner >/dev/null
        if ! as_pg_owner test -x "$DATA" 2>/dev/null; then
            base="/var/tmp/nova-pg-$(printf '%s' "$PROJECT" | cksum | cut -d' ' -f1)"
        fi
    fi
    # Unix socket paths are limited to ~107 bytes.
    if [ -z "$base" ] && [ "${#DATA}" -gt 80 ]; then
        base="/tmp/nova-pg-$(printf '%s' "$PROJECT" | cksum | cut -d' ' -f1)"
    fi
    echo "$base" >"$DATA/postgres.path"
    echo "$base"
}

# Sets PG_DATADIR, PG_SOCKDIR, PG_LOG.
pg_paths() {
    local base
    base="$(pg_external_base)"
    if [ -z "$base" ]; then
        PG_DATADIR="$DATA/postgres"
        PG_SOCKDIR="$DATA/pg-socket"
        PG_LOG="$DATA/postgres.log"
    else
        PG_DATADIR="$base/data"
        PG_SOCKDIR="$base/socket"
        PG_LOG="$base/postgres.log"
    fi
}

pg_ready() { # host port
    pg_isready -q -h "$1" -p "$2" -t 3 >/dev/null 2>&1
}

pg_url() { # user port db
    echo "postgres://$1@127.0.0.1:$2/$3?sslmode=disable"
}

# Sets PG_URL to the admin URL of a usable system PostgreSQL on 5432, or
# returns 1.
system_pg() {
    [ "$FORCE_PRIVATE" = "1" ] && return 1
    command -v pg_isready >/dev/null 2>&1 || return 1
    pg_ready 127.0.0.1 "$SYSTEM_PG_PORT" || return 1
    local user
    for user in postgres "$(id -un)"; do
        if psql -h 127.0.0.1 -p "$SYSTEM_PG_PORT" -U "$user" -d postgres -w -Atqc 'select 1' >/dev/null 2>&1; then
            PG_URL="$(pg_url "$user" "$SYSTEM_PG_PORT" postgres)"
            return 0
        fi
    done
    log "a PostgreSQL answers on 127.0.0.1:$SYSTEM_PG_PORT but neither user postgres nor $(id -un) can log in without a password; using a private one"
    return 1
}

private_pg_running() {
    pg_paths
    [ -f "$PG_DATADIR/postmaster.pid" ] || return 1
    command -v pg_isready >/dev/null 2>&1 || return 1
    pg_ready 127.0.0.1 "$PRIVATE_PG_PORT"
}

start_private_pg() {
    need_pg_server_bins
    need_pg_client_bins
    local bindir owner
    bindir="$(pg_bindir)"
    owner="$(pg_owner)"
    pg_paths

    mkdir -p "$DATA" "$(dirname "$PG_DATADIR")" "$PG_SOCKDIR"
    if [ "$PG_DATADIR" != "$DATA/postgres" ]; then
        log "user $owner cannot reach $DATA (or its path is too long): the cluster lives in $(dirname "$PG_DATADIR")"
        ln -sfn "$PG_DATADIR" "$DATA/postgres"
    fi
    touch "$PG_LOG"
    if is_root; then
        chown "$owner" "$PG_SOCKDIR" "$PG_LOG"
        [ "$PG_DATADIR" = "$DATA/postgres" ] || chown "$owner" "$(dirname "$PG_DATADIR")"
    fi

    if [ ! -f "$PG_DATADIR/PG_VERSION" ]; then
        log "initdb a private PostgreSQL cluster in $PG_DATADIR"
        mkdir -p "$PG_DATADIR"
        if is_root; then chown -R "$owner" "$PG_DATADIR"; fi
        chmod 0700 "$PG_DATADIR"
        local err="$DATA/initdb.err"
        as_pg_owner "$bindir/initdb" -D "$PG_DATADIR" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null 2>"$err" \
            || as_pg_owner "$bindir/initdb" -D "$PG_DATADIR" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null 2>"$err" \
            || { cat "$err" >&2; die "initdb failed"; }
        rm -f "$err"
    fi

    if pg_ready 127.0.0.1 "$PRIVATE_PG_PORT"; then
        die "port $PRIVATE_PG_PORT is taken by another server; set NOVA_PG_PORT to a free port"
    fi

    log "starting private PostgreSQL on 127.0.0.1:$PRIVATE_PG_PORT (data $PG_DATADIR, log $PG_LOG)"
    as_pg_owner "$bindir/pg_ctl" -D "$PG_DATADIR" -l "$PG_LOG" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PRIVATE_PG_PORT -k $PG_SOCKDIR" start >/dev/null \
        || { tail -n 30 "$PG_LOG" >&2 || true; die "pg_ctl start failed (log: $PG_LOG)"; }

    for _ in $(seq 1 60); do
        pg_ready 127.0.0.1 "$PRIVATE_PG_PORT" && return 0
        sleep 0.5
    done
    tail -n 30 "$PG_LOG" >&2 || true
    die "private PostgreSQL did not become ready (log: $PG_LOG)"
}

# Sets PG_URL (the admin URL of the server in use), starting a private server
# when nothing usable is running.
PG_URL=""
ensure_postgres() {
    if [ -n "$PG_URL" ]; then return 0; fi
    if [ -n "${DATABASE_URL:-}" ]; then
        log "PostgreSQL: using \$DATABASE_URL as is"
        PG_URL="$DATABASE_URL"
        return 0
    fi
    if system_pg; then
        log "PostgreSQL: reusing the server on 127.0.0.1:$SYSTEM_PG_PORT"
        return 0
    fi
    need_pg_client_bins
    if private_pg_running; then
        log "PostgreSQL: reusing the private server on 127.0.0.1:$PRIVATE_PG_PORT"
    else
        start_private_pg
        log "PostgreSQL: private server ready on 127.0.0.1:$PRIVATE_PG_PORT"
    fi
    PG_URL="$(pg_url postgres "$PRIVATE_PG_PORT" postgres)"
}

stop_private_pg() {
    local bindir
    if [ ! -e "$DATA/postgres" ] && [ ! -f "$DATA/postgres.path" ]; then
        log "no private PostgreSQL under $DATA"
        return 0
    fi
    pg_paths
    if [ ! -f "$PG_DATADIR/postmaster.pid" ]; then
        log "private PostgreSQL is not running"
        return 0
    fi
    bindir="$(pg_bindir)"
    [ -n "$bindir" ] || die "pg_ctl not found; cannot stop the private PostgreSQL in $PG_DATADIR"
    log "stopping private PostgreSQL ($PG_DATADIR)"
    as_pg_owner "$bindir/pg_ctl" -D "$PG_DATADIR" -m fast -w -t 60 stop >/dev/null
}

# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

redis_ping() { # port
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = "PONG" ]
}

private_redis_pid() {
    local pid
    [ -f "$REDIS_PIDFILE" ] || return 1
    pid="$(cat "$REDIS_PIDFILE" 2>/dev/null || true)"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

start_private_redis() {
    need_redis_bins
    if redis_ping "$PRIVATE_REDIS_PORT"; then
        die "port $PRIVATE_REDIS_PORT is taken by another Redis; set NOVA_REDIS_PORT to a free port"
    fi
    mkdir -p "$REDIS_DIR"
    log "starting private Redis on 127.0.0.1:$PRIVATE_REDIS_PORT (dir $REDIS_DIR, log $REDIS_LOG)"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$PRIVATE_REDIS_PORT" \
        --dir "$REDIS_DIR" --appendonly yes --maxmemory-policy noeviction \
        --logfile "$REDIS_LOG" --pidfile "$REDIS_PIDFILE" >/dev/null
    for _ in $(seq 1 60); do
        redis_ping "$PRIVATE_REDIS_PORT" && return 0
        sleep 0.25
    done
    tail -n 30 "$REDIS_LOG" >&2 || true
    die "private Redis did not answer on port $PRIVATE_REDIS_PORT (log: $REDIS_LOG)"
}

REDIS_URL_IN_USE=""
ensure_redis() {
    if [ -n "$REDIS_URL_IN_USE" ]; then return 0; fi
    if [ -n "${REDIS_URL:-}" ]; then
        log "Redis: using \$REDIS_URL as is"
        REDIS_URL_IN_USE="$REDIS_URL"
        return 0
    fi
    need_redis_bins
    if [ "$FORCE_PRIVATE" != "1" ] && redis_ping "$SYSTEM_REDIS_PORT"; then
        log "Redis: reusing the server on 127.0.0.1:$SYSTEM_REDIS_PORT"
        REDIS_URL_IN_USE="redis://127.0.0.1:$SYSTEM_REDIS_PORT/0"
        return 0
    fi
    if private_redis_pid >/dev/null && redis_ping "$PRIVATE_REDIS_PORT"; then
        log "Redis: reusing the private server on 127.0.0.1:$PRIVATE_REDIS_PORT"
    else
        start_private_redis
        log "Redis: private server ready on 127.0.0.1:$PRIVATE_REDIS_PORT"
    fi
    REDIS_URL_IN_USE="redis://127.0.0.1:$PRIVATE_REDIS_PORT/0"
}

stop_private_redis() {
    local pid
    if ! pid="$(private_redis_pid)"; then
        log "private Redis is not running"
        rm -f "$REDIS_PIDFILE"
        return 0
    fi
    log "stopping private Redis (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 80); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$REDIS_PIDFILE"; return 0; }
        sleep 0.25
    done
    die "private Redis (pid $pid) did not stop within 20s"
}

# ---------------------------------------------------------------------------
# make run
# ---------------------------------------------------------------------------

# Replace the database name in a postgres:// URL, keeping the query string.
url_with_db() { # url db
    local url="$1" db="$2" query="" rest
    case "$url" in *\?*) query="?${url#*\?}"; url="${url%%\?*}" ;; esac
    rest="${url#*://}"
    case "$rest" in
        */*) url="${url%/*}/$db" ;;
        *) url="$url/$db" ;;
    esac
    echo "$url$query"
}

jwt_secret() {
    if [ -n "${NOVA_JWT_SECRET:-}" ]; then
        echo "$NOVA_JWT_SECRET"
        return
    fi
    mkdir -p "$DATA"
    if [ ! -s "$DATA/jwt-secret" ]; then
        log "generating a JWT secret into $DATA/jwt-secret"
        (umask 077 && head -c 36 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n' >"$DATA/jwt-secret")
    fi
    cat "$DATA/jwt-secret"
}

cmd_run() {
    cd "$PROJECT"
    local db_set=0
    [ -n "${DATABASE_URL:-}" ] && db_set=1
    ensure_postgres
    ensure_redis
    if [ "$db_set" -eq 0 ]; then
        local out
        log "creating database nova (if missing)"
        if ! out="$(psql "$PG_URL" -w -v ON_ERROR_STOP=1 -qc 'CREATE DATABASE nova' 2>&1)"; then
            case "$out" in
                *"already exists"*) ;;
                *) printf '%s\n' "$out" >&2; die "could not create database nova" ;;
            esac
        fi
        DATABASE_URL="$(url_with_db "$PG_URL" nova)"
    fi
    export DATABASE_URL
    export REDIS_URL="$REDIS_URL_IN_USE"
    NOVA_JWT_SECRET="$(jwt_secret)"
    export NOVA_JWT_SECRET
    # the demo chat page is on for local runs (its token endpoint is for development only)
    NOVA_DEMO="${NOVA_DEMO:-true}"
    export NOVA_DEMO

    log "go build -o bin/nova ./cmd/nova"
    go build -ldflags "-X main.version=$(git describe --tags --always --dirty 2>/dev/null || echo devel)" -o bin/nova ./cmd/nova
    log "bin/nova migrate"
    bin/nova migrate

    local user token url addr="${NOVA_HTTP_ADDR:-}"
    user="$(cat /proc/sys/kernel/random/uuid)"
    token="$(bin/nova token --user "$user" | tail -n 1 | tr -d '[:space:]')"
    if [ -z "$addr" ]; then
        url="http://localhost:8080"
    else
        case "$addr" in
            :*) url="http://localhost$addr" ;;
            0.0.0.0:*) url="http://localhost:${addr##*:}" ;;
            http://* | https://*) url="$addr" ;;
            *) url="http://$addr" ;;
        esac
    fi
    cat >&2 <<EOF
==> Nova is starting
    URL:        $url
    demo page:  $url/demo/?user=alice   (and ?user=bob in another window; NOVA_DEMO=$NOVA_DEMO)
    database:   ${DATABASE_URL}
    redis:      ${REDIS_URL}
    user id:    $user
    token:      $token

    export TOKEN=$token

==> bin/nova serve   (Ctrl-C stops it; scripts/services.sh stop stops private servers)
EOF
    exec bin/nova serve
}

cmd_status() {
    if [ -n "${DATABASE_URL:-}" ]; then echo "postgres: \$DATABASE_URL";
    elif system_pg; then echo "postgres: system on 127.0.0.1:$SYSTEM_PG_PORT";
    elif [ -e "$DATA/postgres" ] && private_pg_running; then echo "postgres: private on 127.0.0.1:$PRIVATE_PG_PORT ($PG_DATADIR)";
    else echo "postgres: none running (would start a private one on $PRIVATE_PG_PORT)"; fi
    if [ -n "${REDIS_URL:-}" ]; then echo "redis: \$REDIS_URL";
    elif [ "$FORCE_PRIVATE" != "1" ] && command -v redis-cli >/dev/null 2>&1 && redis_ping "$SYSTEM_REDIS_PORT"; then echo "redis: system on 127.0.0.1:$SYSTEM_REDIS_PORT";
    elif private_redis_pid >/dev/null; then echo "redis: private on 127.0.0.1:$PRIVATE_REDIS_PORT (pid $(private_redis_pid))";
    else echo "redis: none running (would start a private one on $PRIVATE_REDIS_PORT)"; fi
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
        ensure-postgres) ensure_postgres ;;
        ensure-redis) ensure_redis ;;
        ensure-test-tools | ensure-bench-tools)
            need_redis_bins
            need_pg_server_bins
            need_pg_client_bins
            local browser=""
            if [ "$cmd" = ensure-test-tools ]; then
                need_chromium
                browser=", chromium /usr/bin/chromium"
            fi
            ensure_postgres
            log "${cmd#ensure-}: redis-server $(command -v redis-server), initdb/pg_ctl in $(pg_bindir)$browser"
            ;;
        postgres-url) ensure_postgres; echo "$PG_URL" ;;
        redis-url) ensure_redis; echo "$REDIS_URL_IN_USE" ;;
        pg-bindir) pg_bindir ;;
        run) cmd_run ;;
        status) cmd_status ;;
        stop)
            stop_private_redis
            stop_private_pg
            ;;
        -h | --help | help | "")
            sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
            [ -n "$cmd" ] || exit 2
            ;;
        *) die "unknown command '$cmd' (try: $0 help)" ;;
    esac
}

main "$@"
