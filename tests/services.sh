#!/usr/bin/env bash
# PostgreSQL and Redis for the tests: private instances on non-default ports, under .services/.
#
# Idempotent: installs the servers from Debian's packages when they are missing (needs root),
# creates the PostgreSQL cluster once, starts whatever is not running, prints the URLs.
#
#   tests/services.sh start             install + start both; print `export KEYSTILE_TEST_…_URL=…` lines;
#                                       they keep running until `stop`
#   tests/services.sh run CMD [ARG…]    start both, run CMD with the URLs exported (what `make test` does);
#                                       when the last run that started them ends (pass, fail or Ctrl-C),
#                                       stop them again: servers that were already up are left as they were
#   tests/services.sh env               print the export lines without starting anything
#   tests/services.sh stop              stop both
#   tests/services.sh start-redis | stop-redis | start-postgres | stop-postgres
#   tests/services.sh browser           install Debian's chromium + chromium-driver for the admin UI's browser
#                                       tests (`run` does it too); Playwright drives /usr/bin/chromium, never a
#                                       browser of its own (a browser download at install time does not work here)
#   tests/services.sh status
#
# Environment:
#   KEYSTILE_SERVICES_DIR     where data, logs and pid files live (default: <repo>/.services). The outage
#                             tests point this at a directory of their own, with their own ports, so
#                             stopping "their" servers never disturbs anyone else's.
#   KEYSTILE_TEST_PG_PORT     default 55432
#   KEYSTILE_TEST_REDIS_PORT  default 56379
#   KEYSTILE_SKIP_SERVICES=1  local runs only: start nothing; the tests that need the servers skip,
#                             saying why. Refused when CI is set: CI always runs them.
#   KEYSTILE_SKIP_BROWSER=1   local runs only: do not install chromium; the browser tests skip, saying why.
#                             Refused when CI is set.
#
# Progress goes to stderr; stdout carries only the export lines (start/env).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="${KEYSTILE_SERVICES_DIR:-$ROOT/.services}"
PG_PORT="${KEYSTILE_TEST_PG_PORT:-55432}"
REDIS_PORT="${KEYSTILE_TEST_REDIS_PORT:-56379}"

say() { echo "services: $*" >&2; }
die() { echo "services: ERROR: $*" >&2; exit 1; }

pg_url() { echo "postgresql://postgres@127.0.0.1:$PG_PORT/postgres"; }
redis_url() { echo "redis://127.0.0.1:$REDIS_PORT/0"; }

print_env() {
    echo "export KEYSTILE_TEST_POSTGRES_URL=$(pg_url)"
    echo "export KEYSTILE_TEST_REDIS_URL=$(redis_url)"
}

# --- installing ------------------------------------------------------------------------------------

pg_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

apt_install() {
    [ "$(id -u)" = 0 ] || die "$* missing and not root: install it (Debian: apt-get install -y $*)"
    say "installing $* from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q "$@" >"$DIR/apt.log" 2>&1; then
        apt-get update -q >>"$DIR/apt.log" 2>&1 || true
        apt-get install -y -q "$@" >>"$DIR/apt.log" 2>&1 || die "apt-get install $* failed; see $DIR/apt.log"
    fi
}

ensure_installed() {
    local missing=()
    pg_bindir >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
    pg_bindir >/dev/null || die "PostgreSQL binaries (initdb, pg_ctl) not found after installing"
    command -v redis-server >/dev/null || die "redis-server not found after installing"
}

port_free() {  # $1 port, $2 the variable that moves it
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        die "127.0.0.1:$1 is taken by another process (another checkout's servers?); set $2 to another port"
    fi
}

# --- the browser for the admin UI tests ------------------------------------------------------------

CHROMIUM=/usr/bin/chromium

ensure_browser() {
    if [ "${KEYSTILE_SKIP_BROWSER:-}" = 1 ]; then
        [ -z "${CI:-}" ] || die "KEYSTILE_SKIP_BROWSER=1 is for local runs only; CI always runs the browser tests"
        say "KEYSTILE_SKIP_BROWSER=1: not installing chromium; the admin UI browser tests will skip"
        return 0
    fi
    if [ ! -x "$CHROMIUM" ] || ! command -v chromedriver >/dev/null; then
        mkdir -p "$DIR"
        apt_install chromium chromium-driver
    fi
    [ -x "$CHROMIUM" ] || die "chromium not found at $CHROMIUM after installing"
}

# --- PostgreSQL ------------------------------------------------------------------------------------

as_pg() {  # postgres refuses to run as root: run its tools as the postgres user
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_home() {
    # The cluster lives where the postgres user can reach it: under $DIR, or (when a parent
    # directory is closed to other users, e.g. a checkout under /root) a /tmp folder tied to $DIR.
    local home="$DIR/postgres"
    mkdir -p "$home"
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
        chown postgres: "$home"
        if ! runuser -u postgres -- test -w "$home"; then
            home="/tmp/keystile-pg-$(echo "$DIR" | md5sum | cut -c1-12)"
            mkdir -p "$home"
            chown postgres: "$home"
            chmod 700 "$home"
        fi
    fi
    echo "$home"
}

pg_running() {
    local home bin
    home="$(pg_home)"
    bin="$(pg_bindir)" || return 1
    [ -f "$home/data/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$home/data" status >/dev/null 2>&1
}

start_postgres() {
    ensure_installed
    local home bin
    home="$(pg_home)"
    bin="$(pg_bindir)"
    if [ ! -f "$home/data/PG_VERSION" ]; then
        say "creating a PostgreSQL cluster in $home/data"
        rm -rf "$home/data"
        as_pg "$bin/initdb" -D "$home/data" -U postgres --auth=trust -E UTF8 --no-sync >"$home/initdb.log" 2>&1 \
            || die "initdb failed; see $home/initdb.log"
    fi
    if pg_running; then
        return 0
    fi
    port_free "$PG_PORT" KEYSTILE_TEST_PG_PORT
    say "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    # Test data only: durability settings off, no unix socket (its path length limit bites deep checkouts).
    as_pg "$bin/pg_ctl" -D "$home/data" -l "$home/postgres.log" -w -t 60 \
        -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        start >/dev/null || die "PostgreSQL did not start; see $home/postgres.log"
}

stop_postgres() {
    local home bin
    bin="$(pg_bindir)" || return 0
    home="$(pg_home)"
    if pg_running; then
        say "stopping PostgreSQL on 127.0.0.1:$PG_PORT"
        as_pg "$bin/pg_ctl" -D "$home/data" -m fast -w -t 60 stop >/dev/null
    fi
}

# --- Redis -----------------------------------------------------------------------------------------

redis_pid() {
    local pidfile="$DIR/redis/redis.pid"
    [ -f "$pidfile" ] || return 1
    local pid
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start_redis() {
    ensure_installed
    if redis_pid >/dev/null; then
        return 0
    fi
    port_free "$REDIS_PORT" KEYSTILE_TEST_REDIS_PORT
    say "starting Redis on 127.0.0.1:$REDIS_PORT"
    mkdir -p "$DIR/redis"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes --pidfile "$DIR/redis/redis.pid" \
        --dir "$DIR/redis" --logfile "$DIR/redis/redis.log" --save "" --appendonly no >/dev/null \
        || die "redis-server did not start; see $DIR/redis/redis.log"
    local i
    for i in $(seq 1 100); do
        if redis_pid >/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    die "Redis is not answering on 127.0.0.1:$REDIS_PORT; see $DIR/redis/redis.log"
}

stop_redis() {
    local pid
    if pid="$(redis_pid)"; then
        say "stopping Redis on 127.0.0.1:$REDIS_PORT"
        kill "$pid"
        local i
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.05
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

# --- commands --------------------------------------------------------------------------------------

skipping() {
    [ "${KEYSTILE_SKIP_SERVICES:-}" = 1 ] || return 1
    if [ -n "${CI:-}" ]; then
        die "KEYSTILE_SKIP_SERVICES=1 is for local runs only; CI always runs the PostgreSQL/Redis tests"
    fi
    say "KEYSTILE_SKIP_SERVICES=1: not starting PostgreSQL/Redis; the tests marked 'services' will skip"
    return 0
}

locked() {  # one caller at a time per services directory (parallel `make test` runs share it)
    mkdir -p "$DIR"
    exec 9>"$DIR/.lock"
    flock 9
    "$@"
    flock -u 9
}

start_all() {
    start_postgres
    start_redis
}

# --- runs: who started the servers, who still uses them ------------------------------------------
# `run` starts a server only when it is down, and then the server belongs to the runs: each run
# holds a file under $DIR/runs while it lasts, and the last one to leave stops what runs started.
# A server started by `start` (or up before any run) is not theirs, and stays up.

RUNS="$DIR/runs"

run_begin() {  # under the lock
    # (pg_bindir first: on a fresh machine pg_running would create the postgres user before the package does)
    { pg_bindir >/dev/null && pg_running; } || : >"$DIR/postgres.started-by-run"
    redis_pid >/dev/null || : >"$DIR/redis.started-by-run"
    start_all
    ensure_browser
    mkdir -p "$RUNS"
    : >"$RUNS/$$"
}

other_runs() {  # the runs still alive besides this one (files of vanished ones are removed)
    local file
    for file in "$RUNS"/*; do
        [ -e "$file" ] || continue
        if [ "${file##*/}" != "$$" ] && kill -0 "${file##*/}" 2>/dev/null; then
            echo "${file##*/}"
        else
            rm -f "$file"
        fi
    done
}

run_end() {  # under the lock
    if [ -n "$(other_runs)" ]; then
        say "PostgreSQL and Redis stay up for another test run that is using them"
        return 0
    fi
    if [ -f "$DIR/redis.started-by-run" ] || [ -n "${CI:-}" ]; then
        stop_redis
        rm -f "$DIR/redis.started-by-run"
    fi
    if [ -f "$DIR/postgres.started-by-run" ] || [ -n "${CI:-}" ]; then
        stop_postgres
        rm -f "$DIR/postgres.started-by-run"
    fi
    if { pg_bindir >/dev/null && pg_running; } || redis_pid >/dev/null; then
        say "PostgreSQL (127.0.0.1:$PG_PORT) / Redis (127.0.0.1:$REDIS_PORT) were up before this run and stay up; stop them with: bash tests/services.sh stop"
    fi
}

forget_runs_ownership() {
    rm -f "$DIR/postgres.started-by-run" "$DIR/redis.started-by-run"
}

command="${1:-start}"
case "$command" in
    start)
        if skipping; then exit 0; fi
        locked start_all
        forget_runs_ownership  # started (or kept) on purpose: runs leave them up
        print_env
        ;;
    run)
        shift
        [ "$#" -gt 0 ] || die "usage: tests/services.sh run CMD [ARG…]"
        if ! skipping; then
            trap 'locked run_end || true' EXIT
            trap 'exit 130' INT
            trap 'exit 143' TERM
            locked run_begin
            eval "$(print_env)"
        fi
        status=0
        "$@" || status=$?
        exit "$status"
        ;;
    env) print_env ;;
    stop)
        locked stop_redis
        locked stop_postgres
        forget_runs_ownership
        ;;
    browser) locked ensure_browser ;;
    start-redis) locked start_redis ;;
    stop-redis) locked stop_redis ;;
    start-postgres) locked start_postgres ;;
    stop-postgres) locked stop_postgres ;;
    status)
        if pg_running; then echo "postgres: running  $(pg_url)"; else echo "postgres: stopped"; fi
        if redis_pid >/dev/null; then echo "redis:    running  $(redis_url)"; else echo "redis:    stopped"; fi
        ;;
    *) die "unknown command $command (start | run | env | stop | browser | start-redis | stop-redis | start-postgres | stop-postgres | status)" ;;
esac
