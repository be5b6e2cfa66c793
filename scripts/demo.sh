#!/usr/bin/env bash
# The demo: ./scripts/demo.sh [--once]
#
# Builds switchyard, starts two throwaway PostgreSQL clusters — blue (127.0.0.1:55432, in
# use today) and green (127.0.0.1:55433, the migration target) — in ./demo-run/, puts
# switchyard in front of them (127.0.0.1:6432, admin API on 127.0.0.1:9187; primary blue,
# mirroring on, 20% shadow reads), runs a short pgbench workload through it, and shows that
# green received the same writes. Then it stays up for you to try it with psql until
# Ctrl-C, and cleans everything up. With --once it cleans up right after the report.
#
# Runs as root (the clusters then run as the `postgres` OS user) or as a normal user.
# Ports in use? Set DEMO_BLUE_PORT, DEMO_GREEN_PORT, DEMO_LISTEN_PORT, DEMO_ADMIN_PORT.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh

ONCE=0
case "${1:-}" in
    "") ;;
    --once) ONCE=1 ;;
    *) sy_die "usage: $0 [--once]" ;;
esac

RUN="$ROOT/demo-run"
BLUE_PORT="${DEMO_BLUE_PORT:-55432}"
GREEN_PORT="${DEMO_GREEN_PORT:-55433}"
LISTEN_PORT="${DEMO_LISTEN_PORT:-6432}"
ADMIN_PORT="${DEMO_ADMIN_PORT:-9187}"
APP_URL="postgresql://app:app-secret@127.0.0.1:$LISTEN_PORT/app"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SWITCHYARD="$TARGET_DIR/release/switchyard"

# Runs a PostgreSQL server program as the user the clusters belong to.
as_pg() {
    if sy_is_root; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# psql as the superuser on one cluster.
pg_super() {
    local port="$1"
    shift
    PGPASSWORD=postgres PGCONNECT_TIMEOUT=5 "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$port" -U postgres "$@"
}

# Stops whatever a previous run left in $RUN: switchyard, then both clusters.
stop_everything() {
    local pid name
    if [ -f "$RUN/switchyard.pid" ]; then
        pid="$(cat "$RUN/switchyard.pid")"
        if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = switchyard ]; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$RUN/switchyard.pid"
    fi
    for name in blue green; do
        if [ -f "$RUN/$name/postmaster.pid" ]; then
            as_pg "$PGBIN/pg_ctl" -D "$RUN/$name" -m fast -w -t 30 stop >/dev/null 2>&1 ||
                as_pg "$PGBIN/pg_ctl" -D "$RUN/$name" -m immediate -w -t 10 stop >/dev/null 2>&1 ||
                true
        fi
    done
}

# shellcheck disable=SC2317 # (invoked by the EXIT trap)
on_exit() {
    local status=$?
    trap - EXIT INT TERM
    # Clean up whatever happens: no errexit, and a closed stdout (Ctrl-C on `demo.sh | tee`)
    # must not kill us halfway.
    set +e
    trap '' PIPE
    # Ctrl-C (or a TERM) is the normal way to end the demo, not a failure.
    if [ "$status" -eq 130 ] || [ "$status" -eq 143 ]; then
        status=0
    fi
    if [ "$status" -ne 0 ] && [ -d "$RUN" ]; then
        echo
        echo "The demo failed (exit status $status). Last lines of the logs:"
        for log in "$RUN/switchyard.log" "$RUN/blue/postgres.log" "$RUN/green/postgres.log"; do
            [ -f "$log" ] || continue
            echo "--- $log"
            tail -n 20 "$log"
        done
    fi
    sy_step "Stopping switchyard and both clusters"
    stop_everything
    if [ "$status" -eq 0 ]; then
        rm -rf "$RUN"
        echo "removed $RUN"
    else
        echo "kept $RUN for a look; the next run removes it"
    fi
    exit "$status"
}

sy_step "Installing what is missing"
sy_ensure_system_deps
command -v cargo >/dev/null 2>&1 || sy_die "cargo not found: install Rust with rustup"
PGBIN="$(sy_pg_bindir)"

sy_step "Building switchyard (release)"
cargo build --release -p switchyard
[ -x "$SWITCHYARD" ] || sy_die "no binary at $SWITCHYARD after the build"

sy_step "Cleaning up a previous run"
if [ -d "$RUN" ]; then
    stop_everything
    rm -rf "$RUN"
    echo "removed the stale $RUN"
fi
for port in $BLUE_PORT $GREEN_PORT $LISTEN_PORT $ADMIN_PORT; do
    if port_open "$port"; then
        sy_die "something else already listens on 127.0.0.1:$port; stop it, or pick other ports (see the top of $0)"
    fi
done
mkdir -p "$RUN/journal"
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

sy_step "Starting PostgreSQL clusters blue (:$BLUE_PORT) and green (:$GREEN_PORT) in $RUN"
if sy_is_root; then
    runuser -u postgres -- test -x "$RUN" ||
        sy_die "the postgres OS user cannot reach $RUN; put the repository somewhere it can (e.g. not under /root)"
fi
echo postgres >"$RUN/superuser-password"
for name in blue green; do
    port=$BLUE_PORT
    [ "$name" = green ] && port=$GREEN_PORT
    dir="$RUN/$name"
    mkdir -p "$dir"
    sy_is_root && chown postgres: "$dir" "$RUN/superuser-password"
    as_pg "$PGBIN/initdb" -D "$dir" -U postgres --pwfile="$RUN/superuser-password" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C \
        --no-sync --no-instructions >"$RUN/initdb-$name.log"
    cat >>"$dir/postgresql.conf" <<CONF

# switchyard demo
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
fsync = off
CONF
    as_pg "$PGBIN/pg_ctl" -D "$dir" -l "$dir/postgres.log" -w -t 60 start >/dev/null
    pg_super "$port" -d postgres -c "CREATE ROLE app LOGIN PASSWORD 'app-secret'" \
        -c "CREATE DATABASE app OWNER app"
    echo "$name: PostgreSQL $(pg_super "$port" -d postgres -Atc 'show server_version') on 127.0.0.1:$port, role app, database app"
done
rm -f "$RUN/superuser-password"

sy_step "Starting switchyard on 127.0.0.1:$LISTEN_PORT (admin API on 127.0.0.1:$ADMIN_PORT)"
cat >"$RUN/switchyard.toml" <<CONF
# Written by scripts/demo.sh
[listen]
address = "127.0.0.1:$LISTEN_PORT"

[admin]
address = "127.0.0.1:$ADMIN_PORT"

[[users]]
name = "app"
password = "app-secret"
auth = "scram-sha-256"

[upstreams.blue]
host = "127.0.0.1"
port = $BLUE_PORT

[upstreams.green]
host = "127.0.0.1"
port = $GREEN_PORT

[routing]
primary = "blue"
canary_percent = 0

[mirror]
enabled = true
journal_dir = "$RUN/journal"

[shadow_reads]
percent = 20
mismatch_log = "$RUN/mismatches.jsonl"
CONF
"$SWITCHYARD" check-config "$RUN/switchyard.toml"
"$SWITCHYARD" serve --config "$RUN/switchyard.toml" >"$RUN/switchyard.log" 2>&1 &
SWITCHYARD_PID=$!
echo "$SWITCHYARD_PID" >"$RUN/switchyard.pid"
for _ in $(seq 300); do
    port_open "$LISTEN_PORT" && break
    kill -0 "$SWITCHYARD_PID" 2>/dev/null || sy_die "switchyard exited; see $RUN/switchyard.log"
    sleep 0.1
done
port_open "$LISTEN_PORT" || sy_die "switchyard does not listen on :$LISTEN_PORT after 30 s"
echo "switchyard (pid $SWITCHYARD_PID) is up; config $RUN/switchyard.toml, log $RUN/switchyard.log"

sy_step "Workload through switchyard: pgbench -i -s 1, then pgbench -c 4 -T 10, then psql"
export PGPASSWORD=app-secret PGCONNECT_TIMEOUT=10
"$PGBIN/pgbench" -i -s 1 -h 127.0.0.1 -p "$LISTEN_PORT" -U app app
"$PGBIN/pgbench" -c 4 -T 10 -h 127.0.0.1 -p "$LISTEN_PORT" -U app app
"$PGBIN/psql" -X -v ON_ERROR_STOP=1 "$APP_URL" <<'SQL'
CREATE TABLE demo_notes (id bigserial PRIMARY KEY, note text NOT NULL, at timestamptz DEFAULT now());
INSERT INTO demo_notes (note) VALUES ('written once, through switchyard'), ('mirrored to green');
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid <= 10;
SELECT id, note FROM demo_notes ORDER BY id;
SQL
unset PGPASSWORD

sy_step "The journal: writes green missed while it was behind, replayed in blue's commit order"
# On a busy machine green can fall behind the mirror queue; those sessions journal their
# writes instead (the client never notices). Replaying them is the runbook's step 2, and
# switchyard refuses to make green primary while it misses writes.
"$SWITCHYARD" journal status --config "$RUN/switchyard.toml"
"$SWITCHYARD" journal replay --config "$RUN/switchyard.toml" --no-progress ||
    sy_die "journal replay stopped; see the report above"

sy_step "What happened: rows on blue and on green"
TABLES="pgbench_accounts pgbench_branches pgbench_tellers pgbench_history demo_notes"
count_rows() {
    pg_super "$1" -d app -Atc "SELECT count(*) FROM $2" 2>/dev/null || echo "-"
}
# The mirror is asynchronous: give green a few seconds to catch up before comparing.
for _ in $(seq 50); do
    same=1
    for table in $TABLES; do
        [ "$(count_rows "$BLUE_PORT" "$table")" = "$(count_rows "$GREEN_PORT" "$table")" ] || same=0
    done
    [ "$same" -eq 1 ] && break
    sleep 0.2
done
printf '%-18s %12s %12s\n' table "blue :$BLUE_PORT" "green :$GREEN_PORT"
for table in $TABLES; do
    printf '%-18s %12s %12s\n' "$table" "$(count_rows "$BLUE_PORT" "$table")" "$(count_rows "$GREEN_PORT" "$table")"
done
sum_balances="SELECT sum(abalance) FROM pgbench_accounts"
printf '%-18s %12s %12s\n' "sum(abalance)" \
    "$(pg_super "$BLUE_PORT" -d app -Atc "$sum_balances")" "$(pg_super "$GREEN_PORT" -d app -Atc "$sum_balances")"
if [ "$same" -eq 1 ]; then
    echo "green has every row blue has."
else
    echo "green differs from blue: see $RUN/switchyard.log and 'switchyard journal status'."
fi

sy_step "Cutover to green and flip-back to blue, under load (pgbench -c 4 keeps running)"
export PGPASSWORD=app-secret
"$PGBIN/pgbench" -c 4 -T 8 -h 127.0.0.1 -p "$LISTEN_PORT" -U app app >"$RUN/pgbench-cutover.log" 2>&1 &
BENCH_PID=$!
# A refusal is shown, not fatal: switchyard will not make an upstream primary while the
# journal holds writes it has not received (a busy machine can make the mirror fall behind).
switch() {
    "$SWITCHYARD" ctl "$1" --admin "http://127.0.0.1:$ADMIN_PORT" ||
        echo "(refused, see above: replay the journal, then try again)"
}
sleep 2
switch cutover
sleep 3
switch flip-back
wait "$BENCH_PID" || sy_die "pgbench failed during the cutover; see $RUN/pgbench-cutover.log"
unset PGPASSWORD
grep -E "number of (transactions actually processed|failed transactions)" "$RUN/pgbench-cutover.log" || true

sy_step "switchyard's own view: switchyard ctl status (JSON: GET http://127.0.0.1:$ADMIN_PORT/status)"
"$SWITCHYARD" ctl status --admin "http://127.0.0.1:$ADMIN_PORT" || echo "(the admin API did not answer)"
[ -s "$RUN/mismatches.jsonl" ] && echo "shadow-read mismatches: $(wc -l <"$RUN/mismatches.jsonl") (in $RUN/mismatches.jsonl)"

if [ "$ONCE" -eq 1 ]; then
    exit 0
fi

sy_step "switchyard is up — try it"
cat <<EOF
  psql "$APP_URL"

  blue directly:   psql "postgresql://app:app-secret@127.0.0.1:$BLUE_PORT/app"
  green directly:  psql "postgresql://app:app-secret@127.0.0.1:$GREEN_PORT/app"
  dashboard:       http://127.0.0.1:$ADMIN_PORT/
  status:          $SWITCHYARD ctl status --admin http://127.0.0.1:$ADMIN_PORT
  metrics:         curl -s 127.0.0.1:$ADMIN_PORT/metrics
  cut over:        $SWITCHYARD ctl cutover --admin http://127.0.0.1:$ADMIN_PORT
  log:             tail -f $RUN/switchyard.log

Press Ctrl-C to stop everything and remove $RUN.
EOF
# Returns when switchyard exits, or when Ctrl-C runs the trap.
wait "$SWITCHYARD_PID" || true
echo "switchyard exited by itself; see the log above"
exit 1
