#!/usr/bin/env bash
# Mirror-on vs mirror-off, side by side: ./bench/mirror.sh [SECONDS] [ROUNDS]
#
# Starts two throwaway PostgreSQL 15 clusters (blue, green) in a temp dir, builds switchyard
# (release), and runs pgbench tpcb-like (-M prepared, 8 clients, scale 10) against, in
# alternating order each round so machine drift hits all alike:
#   direct   — blue itself;
#   mirror-off — switchyard in front of blue, passthrough;
#   mirror-on  — switchyard in front of blue, every write mirrored to green.
# Each run logs every transaction (pgbench -l); the script reports, per target, the median
# over rounds of the throughput and of the p50 / p99 transaction latency, and appends a
# section to bench/RESULTS.md with the command and the machine.
#
# Everything shares the machine's 2 cores (PostgreSQL x2, switchyard, pgbench): the
# mirrored configuration also pays for green's work on the same cores.
set -euo pipefail

SECONDS_PER_RUN="${1:-15}"
ROUNDS="${2:-3}"
CLIENTS=8
SCALE=10
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh
sy_ensure_system_deps >/dev/null

cargo build --release -p switchyard >/dev/null
SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
BIN="$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)"
[ -x "$BIN/initdb" ] || BIN=/usr/lib/postgresql/15/bin

WORK="$(mktemp -d /tmp/switchyard-bench-XXXXXX)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for c in blue green; do [ -d "$WORK/$c" ] && as_pg "$BIN/pg_ctl" -D "$WORK/$c" -m immediate stop >/dev/null 2>&1 || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

start_cluster() { # name port
    as_pg "$BIN/initdb" -D "$WORK/$1" -A trust -U postgres --no-sync >/dev/null
    cat >>"$WORK/$1/postgresql.conf" <<EOF
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
fsync = off
full_page_writes = off
max_connections = 100
EOF
    as_pg "$BIN/pg_ctl" -D "$WORK/$1" -l "$WORK/$1.log" -w start >/dev/null
    "$BIN/psql" -h 127.0.0.1 -p "$2" -U postgres -qc "create role app login password 'app-secret'" >/dev/null
    "$BIN/psql" -h 127.0.0.1 -p "$2" -U postgres -qc "create database app owner app" >/dev/null
}
start_cluster blue 56432
start_cluster green 56433

config() { # mirror(true|false) listen admin
    cat <<EOF
[listen]
address = "127.0.0.1:$2"
[admin]
address = "127.0.0.1:$3"
[[users]]
name = "app"
password = "app-secret"
[upstreams.blue]
host = "127.0.0.1"
port = 56432
[upstreams.green]
host = "127.0.0.1"
port = 56433
[routing]
primary = "blue"
[mirror]
enabled = $1
journal_dir = "$WORK/journal-$2"
EOF
}
config false 56440 56441 >"$WORK/off.toml"
config true 56450 56451 >"$WORK/on.toml"
"$SWITCHYARD" serve --config "$WORK/off.toml" 2>"$WORK/off.log" & PIDS+=($!)
"$SWITCHYARD" serve --config "$WORK/on.toml" 2>"$WORK/on.log" & PIDS+=($!)
sleep 1

export PGPASSWORD=app-secret
# Initialise both databases identically (through the mirror: green gets the same rows).
"$BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p 56450 -U app app >/dev/null 2>&1

declare -A PORT=([direct]=56432 [mirror-off]=56440 [mirror-on]=56450)
TARGETS=(direct mirror-off mirror-on)
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round.
    order=("${TARGETS[@]:$(( (round - 1) % 3 ))}" "${TARGETS[@]:0:$(( (round - 1) % 3 ))}")
    for t in "${order[@]}"; do
        dir="$WORK/run-$t-$round"; mkdir -p "$dir"
        out="$(cd "$dir" && "$BIN/pgbench" -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -l \
            -h 127.0.0.1 -p "${PORT[$t]}" -U app app 2>&1)"
        tps="$(grep -oP 'tps = \K[0-9.]+' <<<"$out" | head -1)"
        failed="$(grep -oP 'number of failed transactions: \K[0-9]+' <<<"$out" || echo 0)"
        read -r p50 p99 < <(cat "$dir"/pgbench_log.* | awk '{print $3}' | sort -n | awk '
            {v[NR]=$1} END {printf "%.3f %.3f\n", v[int(NR*0.50)]/1000, v[int(NR*0.99)]/1000}')
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$round" "$tps" "$p50" "$p99" "$failed" | tee -a "$RESULTS"
    done
done

median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
{
    echo
    echo "## Mirror on vs off (tpcb-like)"
    echo
    echo "- Date: $(date -u +%Y-%m-%d); machine: $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB, PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') x2 (fsync=off), switchyard release build."
    echo "- Command: \`./bench/mirror.sh $SECONDS_PER_RUN $ROUNDS\` — pgbench -M prepared -c $CLIENTS -j 2 -T $SECONDS_PER_RUN, scale $SCALE, $ROUNDS alternating rounds, medians."
    echo "- All on the same 2 cores: with the mirror on, green (the secondary) executes every"
    echo "  write too, competing with blue, switchyard and pgbench for the CPU."
    echo
    echo "| target | tps | vs direct | p50 ms | p99 ms | failed |"
    echo "|---|---|---|---|---|---|"
    direct_tps="$(awk -F'\t' '$1=="direct"{print $3}' "$RESULTS" | median)"
    for t in "${TARGETS[@]}"; do
        tps="$(awk -F'\t' -v t="$t" '$1==t{print $3}' "$RESULTS" | median)"
        p50="$(awk -F'\t' -v t="$t" '$1==t{print $4}' "$RESULTS" | median)"
        p99="$(awk -F'\t' -v t="$t" '$1==t{print $5}' "$RESULTS" | median)"
        failed="$(awk -F'\t' -v t="$t" '$1==t{s+=$6} END{print s+0}' "$RESULTS")"
        ratio="$(awk -v a="$tps" -v b="$direct_tps" 'BEGIN{printf "%.2f", a/b}')"
        echo "| $t | $tps | ${ratio}x | $p50 | $p99 | $failed |"
    done
    journaled="$(grep -c 'falls back to the journal' "$WORK/on.log" || true)"
    echo
    echo "Sessions that fell back to the journal during the mirror-on runs: $journaled."
} | tee -a bench/RESULTS.md
