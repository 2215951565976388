#!/usr/bin/env bash
# Activator helpers for the benchmarks in bench/, on top of bench/lib.sh.
# Source it after lib.sh: `. "$here/lib.sh"; . "$here/lib_activator.sh"`.
#
# The local backend gives pods loopback ports from 20000 up, so act_free_port
# never hands out a port in 20000..20999.

ACT_PID=""      # the activator started by act_start
ACT_PORT=""     # its traffic port
ACT_ADMIN=""    # its admin port (/status, /metrics, /healthz)
ACT_LOG=""      # its stderr+stdout (JSON lines)

# act_free_port: like bench_free_port, avoiding the local backend's pod ports.
act_free_port() {
    local p i
    for ((i = 0; i < 100; i++)); do
        p=$(bench_free_port) || return 1
        ((p >= 20000 && p < 21000)) && continue
        echo "$p"
        return 0
    done
    bench_die "no free port outside 20000..20999"
}

# act_start NAME CONFIG [EXTRA ARGS...]: start build/activator with CONFIG on fresh
# ports; sets ACT_PID, ACT_PORT, ACT_ADMIN, ACT_LOG. Returns 1 if /healthz never answers.
act_start() {
    local name=$1 cfg=$2
    shift 2
    ACT_PORT=$(act_free_port) ACT_ADMIN=$(act_free_port)
    ACT_LOG="$BENCH_TMP/$name.log"
    bench_start ACT_PID "$name" "${BUILD:-build}/activator" --config "$cfg" \
        --listen "127.0.0.1:$ACT_PORT" --admin "127.0.0.1:$ACT_ADMIN" "$@"
    if ! bench_wait_http "http://127.0.0.1:$ACT_ADMIN/healthz" 10; then
        bench_log "activator $name did not come up: $(tail -3 "$ACT_LOG" 2>/dev/null)"
        return 1
    fi
    bench_wait_port "$ACT_PORT" 5
}

# act_stop: SIGTERM the activator (it stops its pods) and wait for it.
act_stop() {
    [[ -n $ACT_PID ]] && bench_stop "$ACT_PID" 15
    ACT_PID=""
}

# act_status: print the activator's /status JSON (empty on failure).
act_status() { curl -s -m 2 "http://127.0.0.1:$ACT_ADMIN/status" 2>/dev/null; }

# act_rev JQ_EXPR [REVISION]: evaluate JQ_EXPR on a revision object of /status
# (the first one if REVISION is not given); prints n/a on failure.
act_rev() {
    local expr=$1 rev=${2:-} out
    out=$(act_status | jq -r --arg r "$rev" \
        "[.services[].revisions[] | select(\$r == \"\" or .name == \$r)][0] | $expr" 2>/dev/null)
    [[ -n $out && $out != null ]] && echo "$out" || echo n/a
}

# act_wait_rev JQ_BOOL TIMEOUT_S [REVISION]: wait until JQ_BOOL is true on the revision.
act_wait_rev() {
    local expr=$1 timeout=$2 rev=${3:-} deadline
    deadline=$((SECONDS + timeout))
    while ((SECONDS <= deadline)); do
        [[ $(act_rev "$expr" "$rev") == true ]] && return 0
        sleep 0.1
    done
    return 1
}

# act_pod_ports [REVISION]: print the queue-proxy port of every ready pod, one per line.
act_pod_ports() {
    act_status | jq -r --arg r "${1:-}" \
        '.services[].revisions[] | select($r == "" or .name == $r) | .pods[] | select(.ready and (.removed|not)) | .port' 2>/dev/null
}

# act_log_values MESSAGE KEY: print KEY of every activator log line whose message is MESSAGE.
act_log_values() {
    jq -r --arg m "$1" --arg k "$2" 'select(.logger == "activator" and .message == $m) | .[$k] // empty' \
        "$ACT_LOG" 2>/dev/null
}

# act_stats: print min/median/max (space-separated) of the numeric arguments, n/a if none.
act_stats() {
    printf '%s\n' "$@" | awk '$1 != "n/a" && $1 != "" { a[n++] = $1 + 0 }
        END {
            if (!n) { print "n/a n/a n/a"; exit }
            for (i = 1; i < n; i++) for (j = i; j > 0 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
            m = (n % 2) ? a[(n-1)/2] : (a[n/2-1] + a[n/2]) / 2
            printf "%.3f %.3f %.3f\n", a[0], m, a[n-1]
        }'
}

# act_results_file NAME: print bench/results/NAME-<date>.txt (creating bench/results).
act_results_file() {
    local dir
    dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/results"
    mkdir -p "$dir"
    echo "$dir/$1-$(date +%Y%m%d-%H%M%S).txt"
}

# act_wrk OUTFILE URL CONNS DURATION [THREADS] [HOST]: bench_wrk with a Host header.
act_wrk() {
    local out=$1 url=$2 conns=$3 dur=$4 threads=${5:-} host=${6:-}
    [[ -n $threads ]] || threads=$((conns < 2 ? 1 : 2))
    local hdr=()
    [[ -n $host ]] && hdr=(-H "Host: $host")
    wrk -t"$threads" -c"$conns" -d"$dur" --latency --timeout 10s "${hdr[@]}" -s "$(bench_wrk_lua)" "$url" >"$out" 2>&1
    return 0
}

# act_reset_hwm PID: reset VmHWM of PID (Linux >= 4.0, needs write access to /proc/PID/clear_refs).
act_reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null; return 0; }

# act_sum JQ_EXPR: print the sum of JQ_EXPR over every revision of /status (n/a on failure).
act_sum() {
    local out
    out=$(act_status | jq -r "[.services[].revisions[] | $1] | add" 2>/dev/null)
    [[ -n $out && $out != null ]] && echo "$out" || echo n/a
}

# act_held_client: print the path of a python3 asyncio client that holds requests open:
#   python3 PATH PORT N HOSTS GO_FILE
# opens N keep-alive connections to 127.0.0.1:PORT, each sending one GET whose
# Host is the next of HOSTS (comma-separated, round robin), prints
# "OPENED <ok> FAILED <n> IN <s> s" once all are sent, waits for GO_FILE to
# exist, then closes them all and prints "ANSWERED_WHILE_HELD <n> <status=count;...>":
# the responses that came before the close (none, if every request was held).
act_held_client() {
    local f="$BENCH_TMP/held_client.py"
    [[ -f $f ]] || cat >"$f" <<'PY'
import asyncio, os, sys, time
port, n, hosts, go_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
reqs = [("GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: held-memory\r\n\r\n" % h).encode() for h in hosts]
conns, answered, failed = [], [], 0

async def one(sem, req):
    global failed
    async with sem:
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(req)
            await w.drain()
        except OSError:
            failed += 1
            return
    conns.append(w)
    try:
        data = await r.read(256)
        if data:
            answered.append(data.split(b"\r\n", 1)[0].decode(errors="replace"))
    except (OSError, asyncio.CancelledError):
        pass

async def main():
    sem = asyncio.Semaphore(256)
    t0 = time.time()
    tasks = [asyncio.create_task(one(sem, reqs[k % len(reqs)])) for k in range(n)]
    while len(conns) + failed < n:
        await asyncio.sleep(0.05)
    print("OPENED %d FAILED %d IN %.2f s" % (len(conns), failed, time.time() - t0), flush=True)
    while not os.path.exists(go_file):
        await asyncio.sleep(0.05)
    early = list(answered)
    for w in conns:
        w.close()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    codes = {}
    for a in early:
        codes[a] = codes.get(a, 0) + 1
    print("ANSWERED_WHILE_HELD %d %s" % (len(early), ";".join("%s=%d" % kv for kv in sorted(codes.items()))), flush=True)

asyncio.run(main())
PY
    echo "$f"
}

# act_wait_held WANT [TIMEOUT_S=60]: wait until the requests held over all revisions
# reach WANT or stop growing (unchanged for 2 s); print the last count.
act_wait_held() {
    local want=$1 deadline=$((SECONDS + ${2:-60})) held last=-1 stable=0
    while ((SECONDS < deadline)); do
        held=$(act_sum .held)
        [[ $held == "$want" ]] && break
        if [[ $held == "$last" ]]; then ((++stable >= 10)) && break; else stable=0; fi
        last=$held
        sleep 0.2
    done
    echo "$held"
}
