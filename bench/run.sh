#!/usr/bin/env bash
# Side-by-side benchmark of switchyard: ./bench/run.sh
#
# Starts two throwaway PostgreSQL 15 clusters (blue, green; fsync=off, max_connections=1100)
# in a temp dir, a release build of switchyard in each configuration, and Debian's pgbouncer
# (session mode) in front of the same upstream, then measures, in this order:
#
#   1. memory: each proxy's RSS (VmRSS) fresh and idle, then with IDLE_SESSIONS idle client
#      sessions open (opened by `switchyard-bench idle`), and the bytes per session;
#   2. latency: single-client round trips of a prepared `SELECT 1` (`switchyard-bench
#      latency`, HDR histogram), p50 / p99 / p99.9, and the microseconds each proxy adds;
#   3. throughput: pgbench select-only and tpcb-like, -M simple/extended/prepared, with
#      1/8/32/64 clients, against every target — the targets alternate run by run (the
#      order rotates for every cell and every round) so that machine drift hits all alike;
#      the proxy's CPU (user+sys from /proc/PID/stat) over each run is divided by the
#      transactions of the run. After each run of a mirroring target, whatever it journaled
#      (its secondary fell behind) is replayed with `switchyard journal replay`, outside the
#      timed window, so green stays in step with blue for the runs after it.
#
# Targets: direct (blue itself), pgbouncer (session mode), switchyard (passthrough: mirror
# off), switchyard-mirror (every write mirrored to green), switchyard-shadow (mirror on and
# `[shadow_reads] percent = 100`: every read also runs on green and is diffed),
# switchyard-canary (mirror on, routing.primary = blue, canary_percent = 50: half the
# sessions are answered by green, their writes mirrored to blue).
#
# Everything is configurable through the environment (defaults: the full matrix):
#   DURATION=30  ROUNDS=3  CLIENTS="1 8 32 64"  MODES="simple extended prepared"
#   CELLS="simple:1,8,32,64 extended:8 prepared:8" (instead of MODES x CLIENTS: each mode
#   with its own client counts; unset = every mode with every CLIENTS)
#   WORKLOADS="select-only tpcb-like"
#   TARGETS="direct pgbouncer switchyard switchyard-mirror switchyard-shadow switchyard-canary"
#   LATENCY_ITERATIONS=20000  LATENCY_WARMUP=2000  (LATENCY_ITERATIONS=0 skips it)
#   IDLE_SESSIONS=1000  MEM_TARGETS="switchyard switchyard-mirror pgbouncer" (IDLE_SESSIONS=0 skips)
#   THROUGHPUT=1  (0 skips pgbench)  PORT_BASE=24700  RESULTS_FILE=bench/RESULTS.md
#   RESULTS_NOTE="free text added to the section"  LOGS_DIR=/some/dir (keeps the logs and
#   configs of the run; the temp dir is removed on exit)  CHART=bench/results.png
#   RAW_DIR=bench/raw (the run's raw TSVs: runs, latency, memory; the chart is drawn from
#   them by `switchyard-bench chart`, which can redraw it later without a run)
#
# Results: printed, and written as the section "## Side by side: direct, pgbouncer,
# switchyard (bench/run.sh)" of bench/RESULTS.md (replacing an older section of that
# heading; other sections are kept), with the chart bench/results.png. Medians over ROUNDS.
#
# Authentication: clients authenticate to switchyard and to pgbouncer with md5 (cheap and
# the same on both), so the per-transaction CPU is not dominated by SCRAM's PBKDF2 at
# connection time; the upstream clusters trust local connections.
set -euo pipefail

DURATION="${DURATION:-30}"
ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-1 8 32 64}"
MODES="${MODES:-simple extended prepared}"
WORKLOADS="${WORKLOADS:-select-only tpcb-like}"
TARGETS="${TARGETS:-direct pgbouncer switchyard switchyard-mirror switchyard-shadow switchyard-canary}"
CELLS="${CELLS:-}"
LATENCY_ITERATIONS="${LATENCY_ITERATIONS:-20000}"
LATENCY_WARMUP="${LATENCY_WARMUP:-2000}"
IDLE_SESSIONS="${IDLE_SESSIONS:-1000}"
MEM_TARGETS="${MEM_TARGETS:-switchyard switchyard-mirror pgbouncer}"
THROUGHPUT="${THROUGHPUT:-1}"
# Below the ephemeral port range (32768-60999), where outgoing connections could hold our ports.
PORT_BASE="${PORT_BASE:-24700}"
SCALE=10
HEADING="## Side by side: direct, pgbouncer, switchyard (bench/run.sh)"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
RESULTS_FILE="${RESULTS_FILE:-$ROOT/bench/RESULTS.md}"
CHART="${CHART:-$ROOT/bench/results.png}"
RAW_DIR="${RAW_DIR:-$ROOT/bench/raw}"
# shellcheck source=scripts/lib/deps.sh
source scripts/lib/deps.sh

# The exact command, for the report: the non-default settings, then the script.
COMMAND=""
for v in DURATION ROUNDS CLIENTS MODES CELLS WORKLOADS TARGETS LATENCY_ITERATIONS LATENCY_WARMUP \
    IDLE_SESSIONS MEM_TARGETS THROUGHPUT PORT_BASE; do
    if [ -n "$(printenv "$v" 2>/dev/null || true)" ]; then
        val="${!v}"
        if [[ "$val" == *" "* ]]; then COMMAND+="$v=\"$val\" "; else COMMAND+="$v=$val "; fi
    fi
done
COMMAND+="./bench/run.sh"
DEFAULT_MATRIX=1
[ "$COMMAND" = "./bench/run.sh" ] || DEFAULT_MATRIX=0

load() { cut -d' ' -f1-3 /proc/loadavg; }
LOAD_START="$(load)"
DATE_START="$(date -u '+%Y-%m-%d %H:%M UTC')"

SWITCHYARDS="switchyard switchyard-mirror switchyard-shadow switchyard-canary"
for t in $TARGETS; do
    case "$t" in
        direct | pgbouncer | switchyard | switchyard-mirror | switchyard-shadow | switchyard-canary) ;;
        *) sy_die "unknown target $t (direct pgbouncer $SWITCHYARDS)" ;;
    esac
done

# The pgbench cells, one "workload<TAB>mode<TAB>clients" line each, in run and report order.
cells() {
    local w m c spec
    for w in $WORKLOADS; do
        if [ -n "$CELLS" ]; then
            for spec in $CELLS; do
                m="${spec%%:*}"
                spec="${spec#*:}"
                for c in ${spec//,/ }; do printf '%s\t%s\t%s\n' "$w" "$m" "$c"; done
            done
        else
            for m in $MODES; do for c in $CLIENTS; do printf '%s\t%s\t%s\n' "$w" "$m" "$c"; done; done
        fi
    done
}

sy_step "dependencies and release build"
sy_ensure_system_deps >/dev/null
cargo build --release -p switchyard -p switchyard-bench
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
SWITCHYARD="$TARGET_DIR/release/switchyard"
PROBE="$TARGET_DIR/release/switchyard-bench"
BIN="$(sy_pg_bindir)"
PGBOUNCER="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
CLK_TCK="$(getconf CLK_TCK)"
# 1,000 sessions through a proxy: client sockets + proxy sockets + upstream sockets.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK="$(mktemp -d /tmp/switchyard-run-XXXXXX)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
    done
    if [ -s "$WORK/pgbouncer.pid" ]; then kill "$(cat "$WORK/pgbouncer.pid")" 2>/dev/null || true; fi
    for c in blue green; do
        if [ -d "$WORK/$c" ]; then
            as_pg "$BIN/pg_ctl" -D "$WORK/$c" -m immediate stop >/dev/null 2>&1 || true
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

BLUE=$PORT_BASE
GREEN=$((PORT_BASE + 1))
declare -A PORT=(
    [direct]=$BLUE
    [pgbouncer]=$((PORT_BASE + 2))
    [switchyard]=$((PORT_BASE + 3))
    [switchyard-mirror]=$((PORT_BASE + 5))
    [switchyard-shadow]=$((PORT_BASE + 7))
    [switchyard-canary]=$((PORT_BASE + 9))
)
declare -A PID=()

wait_port() { # port [log]
    for _ in $(seq 1 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    [ -n "${2:-}" ] && tail -20 "$2" >&2
    sy_die "nothing listens on 127.0.0.1:$1"
}

sy_step "clusters blue ($BLUE) and green ($GREEN), pgbench scale $SCALE"
start_cluster() { # name port
    as_pg "$BIN/initdb" -D "$WORK/$1" -A trust -U postgres --no-sync >/dev/null
    cat >>"$WORK/$1/postgresql.conf" <<EOF
port = $2
listen_addresses = '127.0.0.1'
unix_socket_directories = '$WORK'
fsync = off
full_page_writes = off
synchronous_commit = off
max_connections = 1100
EOF
    as_pg "$BIN/pg_ctl" -D "$WORK/$1" -l "$WORK/$1.log" -w start >/dev/null
    "$BIN/psql" -h 127.0.0.1 -p "$2" -U postgres -qc "create role app login password 'app-secret'" >/dev/null
    "$BIN/psql" -h 127.0.0.1 -p "$2" -U postgres -qc "create database app owner app" >/dev/null
}
start_cluster blue "$BLUE"
start_cluster green "$GREEN"
export PGPASSWORD=app-secret
# Both initialised directly and identically (pgbench's data is deterministic).
"$BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$BLUE" -U app app >/dev/null 2>&1
"$BIN/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$GREEN" -U app app >/dev/null 2>&1

sy_step "switchyard ($SWITCHYARDS) and pgbouncer"
sy_config() { # mirror(true|false) listen admin canary_percent shadow_percent
    cat <<EOF
[listen]
address = "127.0.0.1:$2"
[admin]
address = "127.0.0.1:$3"
[logging]
level = "warn"
[limits]
max_clients = 2000
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
canary_percent = $4
[mirror]
enabled = $1
journal_dir = "$WORK/journal-$2"
[shadow_reads]
percent = $5
mismatch_log = "$WORK/mismatches-$2.jsonl"
EOF
}
sy_config false "${PORT[switchyard]}" $((PORT_BASE + 4)) 0 0 >"$WORK/switchyard.toml"
sy_config true "${PORT[switchyard-mirror]}" $((PORT_BASE + 6)) 0 0 >"$WORK/switchyard-mirror.toml"
sy_config true "${PORT[switchyard-shadow]}" $((PORT_BASE + 8)) 0 100 >"$WORK/switchyard-shadow.toml"
sy_config true "${PORT[switchyard-canary]}" $((PORT_BASE + 10)) 50 0 >"$WORK/switchyard-canary.toml"
for t in $SWITCHYARDS; do
    "$SWITCHYARD" check-config "$WORK/$t.toml" >"$WORK/$t.check" 2>&1 ||
        sy_die "$t: switchyard check-config refused the configuration: $(cat "$WORK/$t.check")"
    "$SWITCHYARD" serve --config "$WORK/$t.toml" 2>"$WORK/$t.log" &
    PID[$t]=$!
    PIDS+=("$!")
done

cat >"$WORK/userlist.txt" <<EOF
"app" "app-secret"
EOF
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
app = host=127.0.0.1 port=$BLUE dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${PORT[pgbouncer]}
unix_socket_dir =
auth_type = md5
auth_file = $WORK/userlist.txt
pool_mode = session
max_client_conn = 1100
default_pool_size = 1000
max_db_connections = 0
pidfile = $WORK/pgbouncer.pid
logfile = $WORK/pgbouncer.log
log_connections = 0
log_disconnections = 0
ignore_startup_parameters = extra_float_digits
EOF
# pgbouncer refuses to run as root; runuser's PAM session resets the soft fd limit to 1024,
# too few for 1,000 clients plus their 1,000 server connections.
# shellcheck disable=SC2016 # expanded by the inner shell
as_pg bash -c 'ulimit -n "$(ulimit -Hn)"; exec "$0" "$@"' "$PGBOUNCER" "$WORK/pgbouncer.ini" \
    >"$WORK/pgbouncer.out" 2>&1 &
PIDS+=("$!")
for t in $SWITCHYARDS; do wait_port "${PORT[$t]}" "$WORK/$t.log"; done
wait_port "${PORT[pgbouncer]}" "$WORK/pgbouncer.out"
PID[pgbouncer]="$(cat "$WORK/pgbouncer.pid")"

url() { echo "host=127.0.0.1 port=${PORT[$1]} user=app password=app-secret dbname=app"; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
rss_kib() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{v[NR]=$1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
backends() { "$BIN/psql" -h 127.0.0.1 -p "$1" -U postgres -Atqc "select count(*) from pg_stat_activity where usename = 'app'"; }

# --- 1. memory ---------------------------------------------------------------------------
MEM="$WORK/memory.tsv"
: >"$MEM"
if [ "$IDLE_SESSIONS" -gt 0 ]; then
    sy_step "memory: $IDLE_SESSIONS idle sessions per proxy"
    for t in $MEM_TARGETS; do
        pid="${PID[$t]}"
        sleep 1
        before="$(rss_kib "$pid")"
        out="$WORK/idle-$t.out"
        "$PROBE" idle --url "$(url "$t")" --sessions "$IDLE_SESSIONS" --hold-secs 3600 >"$out" 2>"$WORK/idle-$t.err" &
        holder=$!
        for _ in $(seq 1 600); do
            grep -qs '^open' "$out" && break
            kill -0 "$holder" 2>/dev/null || break
            sleep 0.5
        done
        if ! grep -qs '^open' "$out"; then
            kill "$holder" 2>/dev/null || true
            wait "$holder" 2>/dev/null || true
            tail -5 "$WORK/pgbouncer.log" >&2 || true
            sy_die "$t: $IDLE_SESSIONS sessions did not open: $(grep -m3 -i error "$WORK/idle-$t.err")"
        fi
        sleep 2
        after="$(rss_kib "$pid")"
        kill "$holder" 2>/dev/null || true
        wait "$holder" 2>/dev/null || true
        per="$(awk -v a="$after" -v b="$before" -v n="$IDLE_SESSIONS" 'BEGIN{printf "%.0f", (a-b)*1024/n}')"
        printf '%s\t%s\t%s\t%s\n' "$t" "$before" "$after" "$per" | tee -a "$MEM"
        # Let the upstream backends go before the next proxy opens its own.
        for _ in $(seq 1 120); do
            [ "$(backends "$BLUE")" -lt 10 ] && [ "$(backends "$GREEN")" -lt 10 ] && break
            sleep 0.5
        done
    done
fi

# --- 2. latency --------------------------------------------------------------------------
LAT="$WORK/latency.tsv"
: >"$LAT"
read -r -a TARGET_LIST <<<"$TARGETS"
NT=${#TARGET_LIST[@]}
rotated() { # offset -> the targets, rotated
    local k=$(($1 % NT))
    echo "${TARGET_LIST[@]:$k}" "${TARGET_LIST[@]:0:$k}"
}
if [ "$LATENCY_ITERATIONS" -gt 0 ]; then
    sy_step "latency: prepared SELECT 1, one client, $LATENCY_ITERATIONS round trips x $ROUNDS rounds"
    for round in $(seq 1 "$ROUNDS"); do
        for t in $(rotated $((round - 1))); do
            json="$("$PROBE" latency --url "$(url "$t")" --iterations "$LATENCY_ITERATIONS" --warmup "$LATENCY_WARMUP")"
            p50="$(grep -oP '"p50_us":\K[0-9.]+' <<<"$json")"
            p99="$(grep -oP '"p99_us":\K[0-9.]+' <<<"$json")"
            p999="$(grep -oP '"p999_us":\K[0-9.]+' <<<"$json")"
            mean="$(grep -oP '"mean_us":\K[0-9.]+' <<<"$json")"
            printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$round" "$p50" "$p99" "$p999" "$mean" | tee -a "$LAT"
        done
    done
fi

# Replays a mirroring target's journal (nothing to do when it is empty); the entries
# applied are summed per target in "$WORK/replayed-TARGET".
replay_journal() { # target
    local out applied
    out="$("$SWITCHYARD" journal replay --config "$WORK/$1.toml" --json --no-progress 2>>"$WORK/replay-$1.log")" ||
        echo "journal replay of $1 did not complete: $(tail -c 300 <<<"$out")" >&2
    applied="$(grep -oP '"applied":\s*\K[0-9]+' <<<"$out" | head -1 || true)"
    echo "${applied:-0}" >>"$WORK/replayed-$1"
}

# --- 3. throughput -----------------------------------------------------------------------
RUNS="$WORK/runs.tsv"
: >"$RUNS"
if [ "$THROUGHPUT" != 0 ]; then
    sy_step "pgbench: $(cells | wc -l) cells ($WORKLOADS; ${CELLS:-$MODES x clients $CLIENTS}) x $TARGETS, ${DURATION}s x $ROUNDS rounds"
    echo -e "target\tworkload\tmode\tclients\tround\ttps\ttransactions\tproxy_cpu_us_per_tx\tlatency_avg_ms\tfailed"
    cell=0
    for round in $(seq 1 "$ROUNDS"); do
        while IFS=$'\t' read -r w m c; do
                    cell=$((cell + 1))
                    for t in $(rotated "$cell"); do
                        if [ "$w" = tpcb-like ]; then
                            # What pgbench itself does before a run, done directly on both sides.
                            for p in "$BLUE" "$GREEN"; do
                                "$BIN/psql" -h 127.0.0.1 -p "$p" -U app -q -c "vacuum pgbench_branches" \
                                    -c "vacuum pgbench_tellers" -c "truncate pgbench_history" app >/dev/null
                            done
                        fi
                        pid="${PID[$t]:-}"
                        [ -n "$pid" ] && t0="$(cpu_ticks "$pid")"
                        out="$("$BIN/pgbench" -n -b "$w" -M "$m" -c "$c" -j $((c < 2 ? 1 : 2)) -T "$DURATION" \
                            -h 127.0.0.1 -p "${PORT[$t]}" -U app app 2>&1)" || true
                        cpu="-"
                        tx="$(grep -oP 'number of transactions actually processed: \K[0-9]+' <<<"$out" || echo 0)"
                        if [ -n "$pid" ] && [ "$tx" -gt 0 ]; then
                            t1="$(cpu_ticks "$pid")"
                            cpu="$(awk -v a="$t0" -v b="$t1" -v hz="$CLK_TCK" -v n="$tx" 'BEGIN{printf "%.2f", (b-a)/hz*1e6/n}')"
                        fi
                        tps="$(grep -oP 'tps = \K[0-9.]+' <<<"$out" | head -1 || true)"
                        lat="$(grep -oP 'latency average = \K[0-9.]+' <<<"$out" || true)"
                        failed="$(grep -oP 'number of failed transactions: \K[0-9]+' <<<"$out" || echo 0)"
                        if [ -z "$tps" ]; then
                            echo "pgbench failed against $t ($w, $m, $c clients):" >&2
                            tail -5 <<<"$out" >&2
                            tps=0
                        fi
                        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                            "$t" "$w" "$m" "$c" "$round" "$tps" "$tx" "$cpu" "${lat:--}" "$failed" | tee -a "$RUNS"
                        # What a mirroring target journaled (its secondary fell behind) is
                        # replayed now, outside the timed run, as an operator would: green
                        # stays in step for the targets after it, and the shadow target's
                        # mismatches mean a real difference, not writes left in a journal.
                        case "$t" in switchyard-*) replay_journal "$t" ;; esac
                    done
        done < <(cells)
    done
fi
LOAD_END="$(load)"

# --- report ------------------------------------------------------------------------------
has() { [[ " $TARGETS " == *" $1 "* ]]; }
col() { # file field target [extra awk condition on $2..]
    awk -F'\t' -v t="$3" -v f="$2" "\$1==t ${4:-} {print \$f}" "$1" | median
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a/b }'; }
kib() { awk -v k="$1" 'BEGIN{printf "%.1f MiB", k/1024}'; }

# The journal fallbacks of the mirroring switchyards by reason (over the whole script: the
# idle sessions of the memory step included).
journal_reasons() {
    local reasons t
    for t in $SWITCHYARDS; do
        [ "$t" = switchyard ] && continue
        has "$t" || continue
        reasons="$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/$t.log" | grep 'falls back to the journal' |
            grep -oP 'reason=("[^"]*"|\S+)' | sort | uniq -c | sort -rn || true)"
        if [ -n "$reasons" ]; then
            echo "Journal fallbacks of $t by reason (whole run, memory step included):"
            echo
            awk '{n = $1; $1 = ""; sub(/^ /, ""); printf "- %s × %s\n", n, $0}' <<<"$reasons"
            echo
        fi
    done
}

# Whether the shadow-read target really ran shadow reads: its metrics name them.
shadow_note() {
    if ! has switchyard-shadow; then return 0; fi
    local lines
    lines="$(curl -fsS "http://127.0.0.1:$((PORT_BASE + 8))/metrics" 2>/dev/null | grep -v '^#' | grep -c -i shadow || true)"
    if [ "${lines:-0}" -gt 0 ]; then
        echo "- switchyard-shadow: mirror on and \`[shadow_reads] percent = 100\`. Its shadow-read metrics at the end of the run:"
        echo
        echo '  ```'
        curl -fsS "http://127.0.0.1:$((PORT_BASE + 8))/metrics" 2>/dev/null | grep -v '^#' | grep -i shadow | head -8 | sed 's/^/  /'
        echo '  ```'
    else
        echo "- switchyard-shadow: mirror on and \`[shadow_reads] percent = 100\` — **the build measured accepts the"
        echo "  key but runs no shadow reads yet** (its metrics name none): this column measures the mirror only,"
        echo "  and must be rerun once shadow reads land."
    fi
}

report() {
    echo "$HEADING"
    echo
    if [ "$DEFAULT_MATRIX" = 0 ]; then
        echo "**Not the default run** (some settings differ from the defaults): see the command below."
        echo
    fi
    echo "- Command: \`$COMMAND\`"
    echo "- Date: $DATE_START; machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -g | awk '/Mem/{print $2}') GiB, $(uname -sr);"
    echo "  PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') x2 (fsync=off, synchronous_commit=off, max_connections=1100),"
    echo "  $("$PGBOUNCER" --version | head -1) (session mode, default_pool_size=1000), switchyard release build"
    echo "  at $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($(git status --porcelain -- proxy protocol config 2>/dev/null | wc -l) files of proxy/ protocol/ config/ modified in the working tree)."
    echo "- Load average (1/5/15 min) at start: $LOAD_START; at end: $LOAD_END. The machine's"
    echo "  cores are shared: other engineers may have been compiling or testing during the run,"
    echo "  and PostgreSQL, the proxy and pgbench all run on the same cores."
    echo "- Targets: direct = blue itself; pgbouncer in session mode; switchyard = passthrough (mirror off);"
    echo "  switchyard-mirror = every write mirrored to green; switchyard-canary = mirror on,"
    echo "  \`routing.primary = \"blue\"\`, \`canary_percent = 50\` (half the sessions answered by green, their"
    echo "  writes mirrored to blue; direct stays blue alone)."
    shadow_note
    echo "- Auth: md5 for clients of switchyard and pgbouncer alike; the clusters trust 127.0.0.1."
    [ -n "${RESULTS_NOTE:-}" ] && echo "- $RESULTS_NOTE"
    echo

    if [ -s "$RUNS" ]; then
        echo "### Throughput (pgbench, scale $SCALE, ${DURATION}s runs, median of $ROUNDS rounds): tps (ratio to direct)"
        echo
        local hdr="| workload | mode | clients |" sep="|---|---|---|" t w m c
        for t in $TARGETS; do hdr+=" $t |"; sep+="---|"; done
        echo "$hdr"
        echo "$sep"
        while IFS=$'\t' read -r w m c; do
            local cond="&& \$2==\"$w\" && \$3==\"$m\" && \$4==\"$c\"" row="| $w | $m | $c |" d
            d="$(col "$RUNS" 6 direct "$cond")"
            for t in $TARGETS; do
                local v
                v="$(col "$RUNS" 6 "$t" "$cond")"
                if has direct; then row+=" $(printf '%.0f' "$v") ($(ratio "$v" "$d")x) |"; else row+=" $(printf '%.0f' "$v") |"; fi
            done
            echo "$row"
        done < <(cells)
        echo
        if [ -s "$CHART" ]; then
            echo "![throughput ratios to direct and single-client latency]($(realpath --relative-to="$(dirname "$RESULTS_FILE")" "$CHART"))"
            echo
        fi
        local proxies=""
        for t in $TARGETS; do [ "$t" != direct ] && proxies+=" $t"; done
        if [ -n "$proxies" ]; then
            echo "### Proxy CPU per transaction (user+sys of the proxy process / transactions), µs, median"
            echo
            hdr="| workload | mode | clients |"
            sep="|---|---|---|"
            for t in $proxies; do hdr+=" $t |"; sep+="---|"; done
            echo "$hdr"
            echo "$sep"
            while IFS=$'\t' read -r w m c; do
                local cond="&& \$2==\"$w\" && \$3==\"$m\" && \$4==\"$c\"" row="| $w | $m | $c |"
                for t in $proxies; do row+=" $(col "$RUNS" 8 "$t" "$cond") |"; done
                echo "$row"
            done < <(cells)
            echo
        fi
        local failed
        failed="$(awk -F'\t' '{s+=$10} END{print s+0}' "$RUNS")"
        local fell="" t
        for t in $SWITCHYARDS; do
            [ "$t" = switchyard ] && continue
            has "$t" && fell+=" $t $(grep -c 'falls back to the journal' "$WORK/$t.log" || true),"
        done
        echo "Failed transactions over all runs: $failed. Sessions that fell back to the journal:${fell%,}."
        echo
        local replayed=""
        for t in $SWITCHYARDS; do
            [ -f "$WORK/replayed-$t" ] && replayed+=" $t $(awk '{s += $1} END {print s + 0}' "$WORK/replayed-$t"),"
        done
        if [ -n "$replayed" ]; then
            echo "Journal entries replayed to the secondary after the runs (outside the timed window):${replayed%,}."
            echo
        fi
        journal_reasons
    fi

    if [ -s "$LAT" ]; then
        echo "### Latency: prepared \`SELECT 1\`, one client, $LATENCY_ITERATIONS round trips (median of $ROUNDS rounds), µs"
        echo
        echo "| target | p50 | p99 | p99.9 | mean | added p50 | added p99 | added p99.9 |"
        echo "|---|---|---|---|---|---|---|---|"
        local d50 d99 d999 t
        d50="$(col "$LAT" 3 direct)"
        d99="$(col "$LAT" 4 direct)"
        d999="$(col "$LAT" 5 direct)"
        for t in $TARGETS; do
            local p50 p99 p999 mean
            p50="$(col "$LAT" 3 "$t")"
            p99="$(col "$LAT" 4 "$t")"
            p999="$(col "$LAT" 5 "$t")"
            mean="$(col "$LAT" 6 "$t")"
            echo "| $t | $p50 | $p99 | $p999 | $mean | $(awk -v a="$p50" -v b="$d50" 'BEGIN{printf "%+.1f", a-b}') | $(awk -v a="$p99" -v b="$d99" 'BEGIN{printf "%+.1f", a-b}') | $(awk -v a="$p999" -v b="$d999" 'BEGIN{printf "%+.1f", a-b}') |"
        done
        echo
    fi

    if [ -s "$MEM" ]; then
        echo "### Memory: RSS fresh and idle, and with $IDLE_SESSIONS idle client sessions open"
        echo
        echo "| proxy | RSS idle | RSS with $IDLE_SESSIONS sessions | per session |"
        echo "|---|---|---|---|"
        while IFS=$'\t' read -r t before after per; do
            echo "| $t | $(kib "$before") | $(kib "$after") | $(awk -v b="$per" 'BEGIN{printf "%.1f KiB", b/1024}') ($per bytes) |"
        done <"$MEM"
        echo
        echo "switchyard-mirror holds two upstream connections per session (blue and green); pgbouncer"
        echo "in session mode holds one server connection per client."
        echo
    fi

    echo "### Against the targets (for reference, never asserted)"
    echo
    targets_check
}

# Prints the lowest median ratio a/b over the cells of a workload against a threshold.
lowest_ratio() { # target_a target_b workload label threshold
    local low="" lowcell="" m c r cond
    while IFS=$'\t' read -r m c; do
        cond="&& \$2==\"$3\" && \$3==\"$m\" && \$4==\"$c\""
        r="$(ratio "$(col "$RUNS" 6 "$1" "$cond")" "$(col "$RUNS" 6 "$2" "$cond")")"
        [ "$r" = - ] && continue
        if [ -z "$low" ] || awk -v a="$r" -v b="$low" 'BEGIN{exit !(a < b)}'; then low="$r"; lowcell="$m, $c clients"; fi
    done < <(awk -F'\t' -v t="$1" -v w="$3" '$1==t && $2==w {print $3"\t"$4}' "$RUNS" | sort -u)
    if [ -n "$low" ]; then
        echo "- $4: lowest ${low}x ($lowcell) — $(awk -v r="$low" -v t="$5" 'BEGIN{ if (r >= t) print "met"; else printf "missed by %.2f", t-r }')."
    fi
}

targets_check() {
    local cond v d
    if [ -s "$RUNS" ] && has switchyard; then
        v="$(awk -F'\t' '$1=="switchyard" && $2=="select-only" && $8!="-" {print $8}' "$RUNS" | sort -g | tail -1)"
        if [ -n "$v" ]; then
            local pb=""
            if has pgbouncer; then
                pb="$(awk -F'\t' '$1=="pgbouncer" && $2=="select-only" && $8!="-" {print $8}' "$RUNS" | sort -g | tail -1)"
                pb=" (pgbouncer's worst cell on the same machine: $pb µs)"
            fi
            echo "- Proxy CPU per select-only transaction ≤ 10 µs: worst cell $v µs — $(awk -v v="$v" 'BEGIN{ if (v <= 10) print "met"; else printf "missed by %.2f µs (%.1fx the target)", v-10, v/10 }')$pb."
        fi
        if has pgbouncer; then
            local win=0 total=0 worst=""
            while IFS=$'\t' read -r w m c; do
                cond="&& \$2==\"$w\" && \$3==\"$m\" && \$4==\"$c\""
                v="$(col "$RUNS" 6 switchyard "$cond")"
                d="$(col "$RUNS" 6 pgbouncer "$cond")"
                total=$((total + 1))
                if awk -v a="$v" -v b="$d" 'BEGIN{exit !(a > b)}'; then win=$((win + 1)); fi
                r="$(ratio "$v" "$d")"
                if [ -z "$worst" ] || awk -v a="$r" -v b="${worst%% *}" 'BEGIN{exit !(a < b)}'; then worst="$r ($w, $m, $c clients)"; fi
            done < <(awk -F'\t' '$1=="switchyard"{print $2"\t"$3"\t"$4}' "$RUNS" | sort -u)
            echo "- Passthrough throughput above pgbouncer's: in $win of $total cells; lowest switchyard/pgbouncer ratio ${worst%% *}x ${worst#* }$(awk -v r="${worst%% *}" 'BEGIN{ if (r < 1) printf " — missed by %.0f%%", (1-r)*100 }')."
        fi
        if has direct; then
            local low="" lowcell=""
            while IFS=$'\t' read -r m c; do
                cond="&& \$2==\"select-only\" && \$3==\"$m\" && \$4==\"$c\""
                r="$(ratio "$(col "$RUNS" 6 switchyard "$cond")" "$(col "$RUNS" 6 direct "$cond")")"
                if [ -z "$low" ] || awk -v a="$r" -v b="$low" 'BEGIN{exit !(a < b)}'; then low="$r"; lowcell="$m, $c clients"; fi
            done < <(awk -F'\t' '$1=="switchyard" && $2=="select-only" && $4>=8 {print $3"\t"$4}' "$RUNS" | sort -u)
            if [ -n "$low" ]; then
                echo "- ≥ 0.70x direct on select-only with 8+ clients: lowest ${low}x ($lowcell) — $(awk -v r="$low" 'BEGIN{ if (r >= 0.70) print "met"; else printf "missed by %.2f", 0.70-r }')."
            fi
            lowest_ratio switchyard direct tpcb-like "≥ 0.70x direct on tpcb-like" 0.70
        fi
    fi
    if [ -s "$RUNS" ] && has switchyard && has switchyard-mirror; then
        lowest_ratio switchyard-mirror switchyard tpcb-like "Mirror on ≥ 0.85x passthrough on tpcb-like" 0.85
    fi
    if [ -s "$LAT" ] && has switchyard && has direct; then
        v="$(awk -v a="$(col "$LAT" 3 switchyard)" -v b="$(col "$LAT" 3 direct)" 'BEGIN{printf "%.1f", a-b}')"
        echo "- Added latency per round trip at one client ≤ 12 µs (p50): +$v µs — $(awk -v v="$v" 'BEGIN{ if (v <= 12) print "met"; else printf "missed by %.1f µs", v-12 }')."
    fi
    if [ -s "$MEM" ]; then
        v="$(awk -F'\t' '$1=="switchyard"{print $4}' "$MEM")"
        if [ -n "$v" ]; then
            echo "- ≤ 32 KiB switchyard memory per idle session: $(awk -v b="$v" 'BEGIN{printf "%.1f KiB — ", b/1024; if (b <= 32768) print "met"; else printf "missed by %.1f KiB", (b-32768)/1024}')."
        fi
    fi
}

if [ -n "${LOGS_DIR:-}" ]; then
    mkdir -p "$LOGS_DIR"
    cp "$WORK"/*.log "$WORK"/*.tsv "$WORK"/*.toml "$WORK"/pgbouncer.ini "$LOGS_DIR"/ 2>/dev/null || true
fi
# The raw measurements, with a header line each, and the chart drawn from them.
mkdir -p "$RAW_DIR"
{
    echo -e "target\tworkload\tmode\tclients\tround\ttps\ttransactions\tproxy_cpu_us_per_tx\tlatency_avg_ms\tfailed"
    cat "$RUNS"
} >"$RAW_DIR/runs.tsv"
{
    echo -e "target\tround\tp50_us\tp99_us\tp999_us\tmean_us"
    cat "$LAT"
} >"$RAW_DIR/latency.tsv"
{
    echo -e "target\trss_idle_kib\trss_sessions_kib\tbytes_per_session"
    cat "$MEM"
} >"$RAW_DIR/memory.tsv"
if [ -s "$RUNS" ] || [ -s "$LAT" ]; then
    "$PROBE" chart --runs "$RAW_DIR/runs.tsv" --latency "$RAW_DIR/latency.tsv" --out "$CHART" \
        --title "switchyard benchmarks (bench/run.sh), $DATE_START, $(nproc) shared cores$([ "$DEFAULT_MATRIX" = 1 ] || echo ", reduced run"): medians of $ROUNDS rounds" ||
        echo "warning: the chart could not be drawn" >&2
fi
REPORT="$WORK/report.md"
report >"$REPORT"
sy_step "results"
cat "$REPORT"

# Replace an older section with the same heading, keep every other section.
if [ -f "$RESULTS_FILE" ]; then
    awk -v h="$HEADING" '
        $0 == h {skip = 1; next}
        skip && /^## / {skip = 0}
        !skip {print}
    ' "$RESULTS_FILE" >"$WORK/results.old"
else
    : >"$WORK/results.old"
fi
{
    # Drop trailing blank lines, then one blank line before the new section.
    awk '{l[NR]=$0} END {n=NR; while (n > 0 && l[n] == "") n--; for (i=1; i<=n; i++) print l[i]}' "$WORK/results.old"
    [ -s "$WORK/results.old" ] && echo
    cat "$REPORT"
} >"$WORK/results.new"
cat "$WORK/results.new" >"$RESULTS_FILE"
echo
echo "written to $RESULTS_FILE"
