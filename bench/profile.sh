#!/usr/bin/env bash
# Instructions per transaction of switchyard's passthrough hot path: ./bench/profile.sh
#
# Starts one throwaway PostgreSQL 15 cluster, a release build of switchyard in passthrough
# (mirror off) under `valgrind --tool=callgrind`, warms it up, zeroes the counters, runs
# `pgbench -S -c CLIENTS -t TXNS` through it, dumps the counters and prints the proxy's
# instructions (Ir, user space, all threads) per transaction and the top functions
# (inclusive and exclusive). Instruction counts do not depend on the machine's load, so
# before/after comparisons of a change are repeatable to a fraction of a percent.
#
# Environment: CLIENTS=8  TXNS=2000 (per client)  MODE=simple|extended|prepared (simple)
#   WORKLOAD="-S" (pgbench's select-only; "-b tpcb-like" for writes)  MIRROR=false
#   TOOL=callgrind|strace|perf (strace: system calls per transaction, strace -c -f; perf:
#   where the CPU goes, user and kernel, sampled with perf record -e cpu-clock)
#   PROFILE_DIR=/some/dir (keeps callgrind.out and the annotated listing; default: a temp
#   dir, removed on exit)  PORT_BASE=24800
# Needs valgrind and strace (Debian packages `valgrind`, `strace`; installed when missing).
set -euo pipefail

CLIENTS="${CLIENTS:-8}"
TXNS="${TXNS:-2000}"
MODE="${MODE:-simple}"
WORKLOAD="${WORKLOAD:--S}"
MIRROR="${MIRROR:-false}"
TOOL="${TOOL:-callgrind}"
PORT_BASE="${PORT_BASE:-24800}"
SCALE=10

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh
sy_ensure_system_deps >/dev/null
sy_apt_install valgrind strace >/dev/null
command -v perf >/dev/null || [ "$TOOL" != perf ] || sy_die "TOOL=perf needs perf (Debian: linux-perf)"
cargo build --release -p switchyard
SWITCHYARD="${CARGO_TARGET_DIR:-$ROOT/target}/release/switchyard"
BIN="$(sy_pg_bindir)"

WORK="$(mktemp -d /tmp/switchyard-profile-XXXXXX)"
OUT="${PROFILE_DIR:-$WORK}"
mkdir -p "$OUT"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
VG=""
cleanup() {
    if [ -n "$VG" ]; then kill "$VG" 2>/dev/null || true; fi
    for c in blue green; do
        if [ -d "$WORK/$c" ]; then as_pg "$BIN/pg_ctl" -D "$WORK/$c" -m immediate stop >/dev/null 2>&1 || true; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BLUE=$PORT_BASE
GREEN=$((PORT_BASE + 1))
PROXY=$((PORT_BASE + 2))
start_cluster() { # name port
    as_pg "$BIN/initdb" -D "$WORK/$1" -A trust -U postgres --no-sync >/dev/null
    cat >>"$WORK/$1/postgresql.conf" <<EOF
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
fsync = off
full_page_writes = off
synchronous_commit = off
EOF
    as_pg "$BIN/pg_ctl" -D "$WORK/$1" -l "$WORK/$1.log" -w start >/dev/null
    "$BIN/psql" -h 127.0.0.1 -p "$2" -U postgres -qc "create role app login password 'app-secret'" >/dev/null
    "$BIN/psql" -h 127.0.0.1 -p "$2" -U postgres -qc "create database app owner app" >/dev/null
}
start_cluster blue "$BLUE"
export PGPASSWORD=app-secret
"$BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$BLUE" -U app app >/dev/null 2>&1
if [ "$MIRROR" = true ]; then
    start_cluster green "$GREEN"
    "$BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$GREEN" -U app app >/dev/null 2>&1
fi

cat >"$WORK/switchyard.toml" <<EOF
[listen]
address = "127.0.0.1:$PROXY"
[admin]
address = "127.0.0.1:$((PORT_BASE + 3))"
[logging]
level = "warn"
[[users]]
name = "app"
password = "app-secret"
auth = "md5"
[upstreams.blue]
host = "127.0.0.1"
port = $BLUE
[upstreams.green]
host = "127.0.0.1"
port = $GREEN
[routing]
primary = "blue"
[mirror]
enabled = $MIRROR
journal_dir = "$WORK/journal"
EOF

if [ "$TOOL" != callgrind ]; then
    "$SWITCHYARD" serve --config "$WORK/switchyard.toml" 2>"$WORK/switchyard.log" &
else
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out" \
        "$SWITCHYARD" serve --config "$WORK/switchyard.toml" 2>"$WORK/valgrind.log" &
fi
VG=$!
for _ in $(seq 1 600); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PROXY") 2>/dev/null; then break; fi
    sleep 0.1
done
read -r -a WORKLOAD_ARGS <<<"$WORKLOAD"
pgbench_through() { # transactions per client
    "$BIN/pgbench" -n "${WORKLOAD_ARGS[@]}" -M "$MODE" -c "$CLIENTS" -j $((CLIENTS < 2 ? 1 : 2)) -t "$1" \
        -h 127.0.0.1 -p "$PROXY" -U app app 2>&1
}
# Warm-up: first connections, lazily initialised state, allocator growth.
pgbench_through 200 >/dev/null
if [ "$TOOL" = perf ]; then
    cpu() { sed 's/.*) //' "/proc/$VG/stat" | awk '{print $12, $13}'; }
    # Context switches of all the proxy's threads (voluntary: it slept waiting for I/O).
    switches() { cat /proc/"$VG"/task/*/status | awk '/^(non)?voluntary_ctxt_switches/ {n += $2} END {print n}'; }
    read -r u0 s0 < <(cpu)
    cs0="$(switches)"
    perf record -q -e cpu-clock -F 4000 -o "$OUT/perf.data" -p "$VG" 2>/dev/null &
    tracer=$!
    sleep 1
    out="$(pgbench_through "$TXNS")"
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    read -r u1 s1 < <(cpu)
    cs1="$(switches)"
    tx="$(grep -oP 'number of transactions actually processed: \K[0-9]+' <<<"$out")"
    hz="$(getconf CLK_TCK)"
    echo
    echo "pgbench $WORKLOAD -M $MODE -c $CLIENTS -t $TXNS through switchyard (mirror.enabled=$MIRROR) under perf record -e cpu-clock"
    awk -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v hz="$hz" -v t="$tx" 'BEGIN {
        printf "transactions: %d; proxy CPU per transaction (/proc, includes perf overhead): user %.1f µs + sys %.1f µs\n",
            t, u / hz * 1e6 / t, s / hz * 1e6 / t }'
    echo "context switches of the proxy's threads per transaction: $(awk -v a="$cs0" -v b="$cs1" -v t="$tx" 'BEGIN{printf "%.2f", (b - a) / t}')"
    perf report -i "$OUT/perf.data" --stdio --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -8
    echo
    echo "top symbols (user and kernel):"
    perf report -i "$OUT/perf.data" --stdio --sort sym 2>/dev/null | grep -E '^ +[0-9]' | head -30 | cut -c1-150
    exit 0
fi
if [ "$TOOL" = strace ]; then
    strace -c -f -o "$OUT/strace.txt" -p "$VG" &
    tracer=$!
    sleep 1
    out="$(pgbench_through "$TXNS")"
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    tx="$(grep -oP 'number of transactions actually processed: \K[0-9]+' <<<"$out")"
    echo
    echo "pgbench $WORKLOAD -M $MODE -c $CLIENTS -t $TXNS through switchyard (mirror.enabled=$MIRROR) under strace -c"
    echo "transactions: $tx; system calls of the proxy per transaction:"
    awk -v t="$tx" '$1 ~ /^[0-9.]+$/ && NF >= 5 {n = $4; name = $NF; printf "%8.3f %s\n", n / t, name}' "$OUT/strace.txt" | sort -rn | head -15
    exit 0
fi
callgrind_control -z "$VG" >/dev/null
out="$(pgbench_through "$TXNS")"
callgrind_control -d "$VG" >/dev/null
kill "$VG" 2>/dev/null || true
wait "$VG" 2>/dev/null || true
VG=""

tx="$(grep -oP 'number of transactions actually processed: \K[0-9]+' <<<"$out")"
# The dump requested after the run (part 1; the file without a number is the rest, up to exit).
dump="$OUT/callgrind.out.1"
ir="$(grep -m1 -oP '^(summary|totals): \K[0-9]+' "$dump")"
echo
echo "pgbench $WORKLOAD -M $MODE -c $CLIENTS -t $TXNS through switchyard (mirror.enabled=$MIRROR) under callgrind"
echo "transactions: $tx; proxy instructions (Ir, all threads): $ir; per transaction: $(awk -v i="$ir" -v t="$tx" 'BEGIN{printf "%.0f", i/t}')"
callgrind_annotate --inclusive=yes --tree=none --auto=no --threshold=100 "$dump" 2>/dev/null >"$OUT/inclusive.txt" || true
callgrind_annotate --inclusive=no --tree=none --auto=no --threshold=100 "$dump" 2>/dev/null >"$OUT/exclusive.txt" || true
# The session tasks (relay included), inclusive: the part of the total that does not depend
# on how often the runtime's workers happened to park and steal during the run.
# (The session future, whose poll inlines session::run, is the closure a session thread runs.)
session="$(grep -m1 -E 'threads.rs:switchyard::threads::SessionThreads::spawn::\{\{closure\}\}|session.rs:switchyard::session::run::\{\{closure\}\}' "$OUT/inclusive.txt" | awk '{gsub(",", "", $1); print $1}')"
echo "of which the session tasks (inclusive: relay, socket I/O calls, tracing span): $(awk -v i="${session:-0}" -v t="$tx" 'BEGIN{printf "%.0f", i/t}') per transaction"
echo
echo "top functions, exclusive (self) instructions per transaction (inlined code folded into its function):"
awk -v t="$tx" '/^ *[0-9,]+ \(/ && !/PROGRAM TOTALS/ {
        ir = $1; gsub(",", "", ir); line = $0
        sub(/^ *[0-9,]+ \( *[0-9.]+%\) +/, "", line); sub(/ \[[^]]*\]$/, "", line)
        fn = substr(line, index(line, ":") + 1); s[fn] += ir
    }
    END { for (f in s) printf "%8.1f  %s\n", s[f] / t, f }' "$OUT/exclusive.txt" |
    sort -rn |
    # callgrind_annotate charges thread-start frames with the whole run; they are not self cost.
    grep -v -E '  (std::sys::backtrace::|tokio::runtime::runtime::Runtime::block_on$|tokio::runtime::task::raw::poll$|tokio::runtime::task::core::Core<T,S>::poll$|tokio::runtime::scheduler::multi_thread::worker::run$|tokio::runtime::scheduler::current_thread::CurrentThread::block_on|tokio::runtime::context::scoped::|tokio::runtime::blocking::pool::Inner::run$|start_thread$|core::ops::function::FnOnce::call_once\{\{vtable|clone$|<tokio::runtime::blocking::task::BlockingTask|<std::sys::thread::unix::Thread>::new::thread_start)' |
    head -25 | cut -c1-160
[ -n "${PROFILE_DIR:-}" ] && echo "kept in $OUT"
