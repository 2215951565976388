#!/usr/bin/env bash
# Shared helpers for the benchmarks in bench/. Source it: `. "$(dirname "$0")/lib.sh"`.
#
# Conventions: every process a bench starts goes through bench_start, so
# bench_cleanup (installed as an EXIT/INT/TERM trap by bench_init) stops them
# all; scratch files live in $BENCH_TMP; numbers that could not be measured
# are printed as "n/a" and never make a bench fail.

BENCH_PIDS=()             # pids started by bench_start, stopped by bench_cleanup
BENCH_PORTS=" "           # ports handed out by bench_free_port in this run
BENCH_TMP=""              # scratch directory, removed on exit (kept if BENCH_KEEP_TMP=1)
BENCH_CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# bench_log MSG...: progress message on stderr, prefixed with the time.
bench_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# bench_die MSG...: print MSG on stderr and exit 1 (the trap cleans up).
bench_die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# bench_init: create $BENCH_TMP and install the cleanup trap; call once, first.
bench_init() {
    BENCH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX") || bench_die "mktemp failed"
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# bench_cleanup: stop every process started by bench_start and remove $BENCH_TMP.
bench_cleanup() {
    local pid
    for pid in "${BENCH_PIDS[@]}"; do bench_stop "$pid"; done
    BENCH_PIDS=()
    if [[ -n $BENCH_TMP && ${BENCH_KEEP_TMP:-0} != 1 ]]; then rm -rf "$BENCH_TMP"; fi
}

# bench_require CMD...: exit with a message unless every CMD is on PATH or an executable path.
bench_require() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || [[ -x $c ]] || bench_die "missing $c (try: make deps-bench / make)"
    done
}

# bench_port_in_use PORT: true if any TCP socket (listening or connected, any state) uses local PORT.
bench_port_in_use() { [[ -n $(ss -Htan "sport = :$1" 2>/dev/null) ]]; }

# bench_free_port: print an unused TCP port below the kernel's ephemeral range, not yet handed out in this run.
bench_free_port() {
    local p i lo hi
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
    hi=$((lo > 12000 ? lo - 1 : 65535)) lo=$((lo > 12000 ? 10000 : 61000))
    for ((i = 0; i < 1000; i++)); do
        p=$((lo + RANDOM % (hi - lo + 1)))
        [[ $BENCH_PORTS == *" $p "* ]] && continue
        bench_port_in_use "$p" && continue
        BENCH_PORTS+="$p "
        echo "$p"
        return 0
    done
    bench_die "no free port found"
}

# bench_wait_port PORT [TIMEOUT_S=10] [HOST=127.0.0.1]: wait until HOST:PORT accepts connections.
bench_wait_port() {
    local port=$1 timeout=${2:-10} host=${3:-127.0.0.1} deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS <= deadline)); do
        (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
        sleep 0.02
    done
    return 1
}

# bench_wait_http URL [TIMEOUT_S=10] [STATUS=200]: wait until GET URL answers STATUS.
bench_wait_http() {
    local url=$1 timeout=${2:-10} want=${3:-200} deadline code
    deadline=$((SECONDS + timeout))
    while ((SECONDS <= deadline)); do
        code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null)
        [[ $code == "$want" ]] && return 0
        sleep 0.02
    done
    return 1
}

# bench_start VAR NAME CMD...: run CMD in the background (output to $BENCH_TMP/NAME.log), store its pid in VAR.
bench_start() {
    local __var=$1 name=$2
    shift 2
    "$@" >"$BENCH_TMP/$name.log" 2>&1 &
    local pid=$!
    BENCH_PIDS+=("$pid")
    printf -v "$__var" '%s' "$pid"
}

# bench_alive PID: true if PID is still running.
bench_alive() { kill -0 "$1" 2>/dev/null; }

# bench_stop PID [TIMEOUT_S=5]: SIGTERM PID, SIGKILL it after TIMEOUT_S, reap it, forget it.
bench_stop() {
    local pid=$1 timeout=${2:-5} i
    if bench_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < timeout * 50; i++)); do bench_alive "$pid" || break; sleep 0.02; done
        bench_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
    BENCH_PIDS=("${keep[@]}")
    return 0
}

# bench_cpu_ticks PID: print utime+stime of PID in clock ticks (from /proc/PID/stat), or nothing.
bench_cpu_ticks() {
    local stat fields
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    read -ra fields <<<"${stat##*) }"   # fields after "(comm) ": [0] is field 3 (state)
    echo $((fields[11] + fields[12]))   # fields 14 (utime) and 15 (stime)
}

# bench_cpu_seconds TICKS_BEFORE TICKS_AFTER: print the CPU seconds between two bench_cpu_ticks, or n/a.
bench_cpu_seconds() {
    [[ -n ${1:-} && -n ${2:-} ]] || { echo n/a; return; }
    awk -v a="$1" -v b="$2" -v hz="$BENCH_CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }'
}

# bench_status_kib PID FIELD: print a /proc/PID/status field in KiB (VmRSS, VmHWM, ...), or nothing.
bench_status_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null; }

# bench_mib KIB: print KIB as MiB with one decimal, or n/a.
bench_mib() {
    [[ -n ${1:-} ]] || { echo n/a; return; }
    awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

# bench_wrk_lua: print the path of a wrk script whose done() prints one "key=value ..." summary line.
bench_wrk_lua() {
    local f="$BENCH_TMP/summary.lua"
    [[ -f $f ]] || cat >"$f" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_SUMMARY requests=%d duration_us=%d rps=%.2f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
LUA
    echo "$f"
}

# bench_wrk OUTFILE URL CONNS DURATION [THREADS]: run wrk (keep-alive, GET) with the summary script, output to OUTFILE.
bench_wrk() {
    local out=$1 url=$2 conns=$3 dur=$4 threads=${5:-}
    [[ -n $threads ]] || threads=$((conns < 2 ? 1 : 2))
    wrk -t"$threads" -c"$conns" -d"$dur" --latency --timeout 10s -s "$(bench_wrk_lua)" "$url" >"$out" 2>&1
    return 0
}

# bench_wrk_get OUTFILE KEY: print a value from bench_wrk's summary line (rps, p50_us, p99_us, errors, non2xx, ...), or n/a.
# errors = all socket errors + non-2xx/3xx responses; non2xx = wrk's "Non-2xx or 3xx responses".
bench_wrk_get() {
    local out=$1 key=$2
    awk -v k="$key" '
        /^WRK_SUMMARY / {
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            found = 1
        }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        END {
            if (!found) { print "n/a"; exit }
            v["non2xx"] = non2xx + 0
            v["errors"] = v["err_connect"] + v["err_read"] + v["err_write"] + v["err_timeout"] + v["err_status"]
            if (k in v) print v[k]; else print "n/a"
        }' "$out" 2>/dev/null || echo n/a
}

# bench_us_to_ms US: print microseconds as milliseconds with 3 decimals, or n/a.
bench_us_to_ms() {
    [[ ${1:-n/a} != n/a && -n ${1:-} ]] || { echo n/a; return; }
    awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'
}

# bench_median X...: print the median of the numeric arguments, ignoring n/a (n/a if none).
bench_median() {
    printf '%s\n' "$@" | awk '$1 != "n/a" && $1 != "" { a[n++] = $1 + 0 }
        END {
            if (!n) { print "n/a"; exit }
            for (i = 1; i < n; i++) for (j = i; j > 0 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
            m = (n % 2) ? a[(n-1)/2] : (a[n/2-1] + a[n/2]) / 2
            print m
        }'
}

# bench_sum X...: print the sum of the numeric arguments, ignoring n/a (n/a if none).
bench_sum() {
    printf '%s\n' "$@" | awk '$1 != "n/a" && $1 != "" { s += $1; n++ } END { if (n) print s; else print "n/a" }'
}

# bench_calc FORMAT EXPR [VAR=VALUE...]: printf FORMAT the awk expression EXPR over VARs; n/a if a VAR is n/a or on division by zero.
bench_calc() {
    local fmt=$1 expr=$2 a
    shift 2
    for a in "$@"; do [[ ${a#*=} == n/a || -z ${a#*=} ]] && { echo n/a; return; }; done
    local args=()
    for a in "$@"; do args+=(-v "$a"); done
    local r
    r=$(awk "${args[@]}" "BEGIN { r = ($expr); printf \"$fmt\", r }" 2>/dev/null)
    [[ $r =~ ^[+-]?[0-9]+(\.[0-9]+)?$ ]] && echo "$r" || echo n/a
}

# bench_table: read tab-separated rows (first row = header) on stdin, print them as right-aligned columns.
bench_table() {
    awk -F'\t' '
        { for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (length($i) > w[i]) w[i] = length($i) } if (NF > nf) nf = NF }
        END {
            for (r = 1; r <= NR; r++) {
                line = ""
                for (i = 1; i <= nf; i++) line = line sprintf(i == 1 ? "%-*s" : "  %*s", w[i], c[r, i])
                print line
                if (r == 1) { gsub(/./, "-", line); print line }
            }
        }'
}

# bench_md_table: like bench_table, as a markdown table (for a report or a README).
bench_md_table() {
    awk -F'\t' '
        {
            line = "|"
            for (i = 1; i <= NF; i++) line = line " " $i " |"
            print line
            if (NR == 1) { line = "|"; for (i = 1; i <= NF; i++) line = line (i == 1 ? "---|" : "--:|"); print line }
        }'
}

# bench_sysinfo: print one-line-per-fact context for a results file (date, host CPU, kernel, git revision).
bench_sysinfo() {
    echo "date:    $(date -Iseconds)"
    echo "cpu:     $(nproc) x $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null)"
    echo "kernel:  $(uname -r)"
    echo "git:     $(git -C "$(dirname "${BASH_SOURCE[0]}")" describe --always --dirty 2>/dev/null || echo n/a)"
}
