#!/usr/bin/env bash
# sluice side-by-side benchmark against nginx and haproxy (run by `make bench`).
#
# One nginx backend ("hello world\n", keep-alive) and three reverse proxies in front of it,
# each with ONE worker and upstream keep-alive: sluice, nginx, haproxy. Measures
#   1. throughput and latency (wrk): requests/s, p50, p99, proxy CPU use;
#      and, in the same rounds, sluice on a route with every HTTP policy against a plain route;
#   2. memory of idle keep-alive client connections (bench/connhold.c): KiB per connection;
#   3. sluice route scaling: 10 routes vs BENCH_ROUTES routes, requesting the last one;
#   4. sluice balancers: the cost of one decision per policy with 3 and 1,000 nodes
#      (sluice-balancer-bench), and proxy throughput with each policy over 3 backend addresses;
#   5. stream proxying against nginx's stream module and haproxy in TCP mode, one worker each:
#      redis-benchmark PING round trips through each to one redis-server, 1 GiB each way
#      through each (bench/bulk.c), and UDP round trips to an echo backend (bench/udpreq.c)
#      through sluice and nginx (haproxy has no UDP proxy).
# Prints a summary and writes it to bench/results/latest.md. Loopback only; every load phase
# is bounded in time; every process started here is stopped on exit (also on Ctrl-C/failure).
#
# Knobs (environment):
#   SLUICE_BIN              sluice binary                        (default build/sluice)
#   BENCH_DURATION          wrk duration per measurement         (default 10s)
#   BENCH_WARMUP            wrk warm-up before each measurement  (default 2s, 0 = none)
#   BENCH_CONNECTIONS       wrk connections                      (default 50)
#   BENCH_THREADS           wrk threads                          (default 1)
#   BENCH_ROUNDS            interleaved rounds; medians reported (default 3)
#   BENCH_IDLE_CONNECTIONS  idle keep-alive connections          (default 10000)
#   BENCH_ROUTES            routes for the route-scaling run     (default 10000)
#   BENCH_PIN               1 = pin proxies / client+backend to separate CPUs (default 1)
#   BENCH_OUT               summary file                         (default bench/results/latest.md)
#   BENCH_POLICIES          balancers for the per-policy run     (default: all seven; "" = skip)
#   BENCH_SECTIONS          what to run: http (1-4), stream (5)  (default "http stream")
#   BENCH_BULK_BYTES        bytes of each bulk transfer          (default 1073741824, 1 GiB)
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SLUICE_BIN=${SLUICE_BIN:-$ROOT/build/sluice}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
CONNS=${BENCH_CONNECTIONS:-50}
THREADS=${BENCH_THREADS:-1}
ROUNDS=${BENCH_ROUNDS:-3}
IDLE_CONNS=${BENCH_IDLE_CONNECTIONS:-10000}
ROUTES=${BENCH_ROUTES:-10000}
PIN=${BENCH_PIN:-1}
OUT=${BENCH_OUT:-$ROOT/bench/results/latest.md}
SECTIONS=${BENCH_SECTIONS-http stream}
BULK_BYTES=${BENCH_BULK_BYTES:-1073741824}
PY=/usr/bin/python3

want() { [[ " $SECTIONS " == *" $1 "* ]]; }

TOOLS="nginx haproxy cc curl taskset"
want http && TOOLS="$TOOLS wrk"
want stream && TOOLS="$TOOLS redis-server redis-benchmark redis-cli"
for tool in $TOOLS; do
    command -v "$tool" >/dev/null 2>&1 || { echo "bench: missing $tool (run scripts/install-deps)" >&2; exit 1; }
done

W=$(mktemp -d /tmp/sluice-bench.XXXXXX)
PIDS=()

log() { printf '== %s\n' "$*" >&2; printf -- '- %s\n' "$*" >>"$W/log.txt"; }

# All descendants of a pid (inclusive), from /proc/PID/task/*/children.
tree_pids() {
    local p=$1 c
    [ -d "/proc/$p" ] || return 0
    echo "$p"
    for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do tree_pids "$c"; done
}

stop_pid() {
    local p=$1 all i
    [ -d "/proc/$p" ] || return 0
    all=$(tree_pids "$p")
    kill -TERM $all 2>/dev/null
    for i in $(seq 50); do
        local alive=0 q
        for q in $all; do [ -d "/proc/$q" ] && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    kill -KILL $all 2>/dev/null
    wait "$p" 2>/dev/null
    return 0
}

cleanup() {
    local p
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do stop_pid "$p"; done
    rm -rf "$W"
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT
trap 'echo "bench: terminated" >&2; exit 143' TERM

# Raise the descriptor limit for everything started from here (10k client connections).
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
if want http && [ "$NOFILE" != unlimited ] && [ "$NOFILE" -lt $((IDLE_CONNS + 1000)) ]; then
    echo "bench: open-file limit $NOFILE is too low for $IDLE_CONNS idle connections" >&2
    exit 1
fi
FD_LIMIT=$NOFILE; [ "$FD_LIMIT" = unlimited ] && FD_LIMIT=1048576

# CPU placement. With 2 CPUs: every proxy on CPU 0, load generators (wrk, connhold,
# redis-benchmark, bulk, udpreq) and backends on CPU 1, so the proxy under test has a core of
# its own and the load generator never steals from it.
# The prefixes are arrays used in simple commands, so "cmd &" execs the program and $! is the
# process itself (taskset execs it): no wrapper subshell's RSS or CPU gets counted.
NCPU=$(nproc)
if [ "$PIN" = 1 ] && [ "$NCPU" -ge 2 ]; then
    PROXY_CPU=0
    if [ "$NCPU" -ge 3 ]; then BACKEND_CPU=1; CLIENT_CPU="2-$((NCPU - 1))"; else BACKEND_CPU=1; CLIENT_CPU=1; fi
    PIN_NOTE="proxy on CPU $PROXY_CPU; backends on CPU $BACKEND_CPU; load generators on CPU $CLIENT_CPU"
    ON_PROXY=(taskset -c "$PROXY_CPU")
    ON_BACKEND=(taskset -c "$BACKEND_CPU")
    ON_CLIENT=(taskset -c "$CLIENT_CPU")
else
    PIN_NOTE="no CPU pinning (BENCH_PIN=$PIN, $NCPU CPUs)"
    ON_PROXY=(); ON_BACKEND=(); ON_CLIENT=()
fi

# Free loopback ports outside the ephemeral range (so 10k client connections cannot take them),
# free for TCP and UDP alike.
free_ports() {
    $PY - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1]); out = []; held = []
while len(out) < n:
    p = random.randint(20000, 32000)
    pair = [socket.socket(socket.AF_INET, socket.SOCK_STREAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
    try:
        for s in pair:
            s.bind(("127.0.0.1", p))
    except OSError:
        for s in pair:
            s.close()
        continue
    held += pair; out.append(str(p))
print(" ".join(out))
EOF
}

wait_port() { # port pid -> 0 once accepting, 1 if the process died or 10 s passed
    local port=$1 pid=$2 i
    for i in $(seq 100); do
        [ -d "/proc/$pid" ] || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

http_ok() { # url [curl args] -> 0 if the body is the backend's
    local body
    body=$(curl -s -m 3 "${@:2}" "$1" 2>/dev/null) && [ "$body" = "hello world" ]
}

# HTTP ports, then stream ones: backends (redis-server, bulk, UDP echo), then each proxy's
# listeners (S_* for sluice's TCP instance, U_* for its UDP one).
read -r P_BACKEND P_NGINX P_HAPROXY P_SLUICE P_STATUS P_RS1 P_RS1S P_RS2 P_RS2S P_POL P_POLS \
    P_REDIS P_BULK P_ECHO N_REDIS N_BULK N_UDP H_REDIS H_BULK S_HTTP S_REDIS S_BULK U_HTTP U_UDP \
    P_NGINX_LOG P_SLUICE_LOG P_SLUICE_LOGS <<<"$(free_ports 27)"

# ---------------------------------------------------------------- backend ----
mkdir -p "$W/backend"
cat >"$W/backend/nginx.conf" <<EOF
worker_processes 1;
daemon off;
user root;
pid $W/backend/nginx.pid;
error_log $W/backend/error.log warn;
worker_rlimit_nofile $FD_LIMIT;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $W/backend/body;
    proxy_temp_path $W/backend/proxy;
    fastcgi_temp_path $W/backend/fastcgi;
    uwsgi_temp_path $W/backend/uwsgi;
    scgi_temp_path $W/backend/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$P_BACKEND backlog=4096;
        listen 127.0.0.2:$P_BACKEND backlog=4096;
        listen 127.0.0.3:$P_BACKEND backlog=4096;
        location / { default_type text/plain; return 200 "hello world\n"; }
        # For the policies comparison: a cookie for cookie_rewrite to work on.
        location = /c {
            default_type text/plain;
            add_header Set-Cookie "session=abc123; Path=/app; Domain=backend.local; HttpOnly";
            return 200 "hello world\n";
        }
    }
}
EOF
if want http; then
    "${ON_BACKEND[@]}" nginx -p "$W/backend" -c "$W/backend/nginx.conf" -e "$W/backend/error.log" >"$W/backend/out.log" 2>&1 &
    BACKEND_PID=$!; PIDS+=("$BACKEND_PID")
    if ! wait_port "$P_BACKEND" "$BACKEND_PID" || ! http_ok "http://127.0.0.1:$P_BACKEND/"; then
        echo "bench: backend nginx did not start:" >&2; cat "$W/backend/out.log" "$W/backend/error.log" >&2
        exit 1
    fi
    log "backend nginx on 127.0.0.1:$P_BACKEND"
fi

# ------------------------------------------------------------ nginx proxy ----
mkdir -p "$W/nginx"
cat >"$W/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
user root;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log warn;
worker_rlimit_nofile $FD_LIMIT;
events { worker_connections $((FD_LIMIT - 100)); }
http {
    access_log off;
    client_body_temp_path $W/nginx/body;
    proxy_temp_path $W/nginx/proxy;
    fastcgi_temp_path $W/nginx/fastcgi;
    uwsgi_temp_path $W/nginx/uwsgi;
    scgi_temp_path $W/nginx/scgi;
    keepalive_timeout 300s;
    keepalive_requests 100000000;
    upstream backend {
        server 127.0.0.1:$P_BACKEND;
        keepalive 256;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$P_NGINX backlog=4096;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF

# The same nginx, writing its access log to a file as most deployments do: buffered (64 KiB,
# flushed at least every second), in the combined format.
mkdir -p "$W/nginx-log"
sed -e "s|$W/nginx/|$W/nginx-log/|g" -e "s|listen 127.0.0.1:$P_NGINX |listen 127.0.0.1:$P_NGINX_LOG |" \
    -e "s|    access_log off;|    access_log $W/nginx-log/access.log combined buffer=64k flush=1s;|" \
    "$W/nginx/nginx.conf" >"$W/nginx-log/nginx.conf"

# ---------------------------------------------------------- haproxy proxy ----
mkdir -p "$W/haproxy"
# haproxy reserves two descriptors per maxconn and refuses to start when the open-file limit
# is below that (strict-limits); the idle-connection test needs only one per client plus a few
# upstream ones, so with a hard limit of e.g. 20000 "no strict-limits" keeps it running.
HAPROXY_MAXCONN=$((IDLE_CONNS + 500))
cat >"$W/haproxy/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $HAPROXY_MAXCONN
    ulimit-n $FD_LIMIT
    no strict-limits
defaults
    mode http
    maxconn $HAPROXY_MAXCONN
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    option http-keep-alive
frontend fe
    bind 127.0.0.1:$P_HAPROXY
    default_backend be
backend be
    http-reuse always
    server backend 127.0.0.1:$P_BACKEND
EOF

# ----------------------------------------------------------- sluice proxy ----
sluice_yaml() { # listen-port status-port nroutes(0 = one "/*" route)
    local listen=$1 status=$2 n=$3 i
    cat <<EOF
gateway:
  workers: 1
  http:
    listen: ["127.0.0.1:$listen"]
  status:
    listen: 127.0.0.1:$status
  access_log: ${SL_ACCESS_LOG:-{path: off\}}
services:
  - name: bench
    upstream:
      keepalive: {max_idle: 256}
EOF
    # The per-policy run (SL_BALANCE set): the same backend on three loopback addresses.
    case "${SL_BALANCE:-}" in
    "") echo "      nodes: [{address: 127.0.0.1:$P_BACKEND}]" ;;
    *)
        echo "      balance: $SL_BALANCE"
        echo "      nodes: [{address: 127.0.0.1:$P_BACKEND}, {address: 127.0.0.2:$P_BACKEND, weight: 2}, {address: 127.0.0.3:$P_BACKEND, weight: 3}]"
        if [ "$SL_BALANCE" = hash ]; then echo "      hash: {on: ip}"; fi
        if [ "$SL_BALANCE" = cookie ]; then echo "      cookie: {name: sid}"; fi
        ;;
    esac
    echo "    routes:"
    if [ "$n" = 0 ]; then
        echo '      - {name: all, paths: ["/*"]}'
        cat "$ROOT/bench/every-policy-route.yaml"
    else
        for ((i = 0; i < n; i++)); do
            printf '      - {name: r%d, hosts: ["h%d.bench.local"], paths: ["/r/%d"]}\n' "$i" "$i" "$i"
        done
    fi
}

SLUICE_NOTE=""
launch_sluice() { # name -> checks $W/NAME/sluice.yaml and starts sluice on it: SL_PID; else SLUICE_NOTE
    local name=$1
    if [ ! -x "$SLUICE_BIN" ]; then SLUICE_NOTE="no binary at $SLUICE_BIN"; return 1; fi
    if ! "$SLUICE_BIN" validate "$W/$name/sluice.yaml" >"$W/$name/validate.log" 2>&1; then
        SLUICE_NOTE="configuration rejected: $(head -c 300 "$W/$name/validate.log" | tr -s ' \n' ' ' | sed 's/ $//')"
        return 1
    fi
    "${ON_PROXY[@]}" "$SLUICE_BIN" run -c "$W/$name/sluice.yaml" >"$W/$name/out.log" 2>&1 &
    SL_PID=$!; PIDS+=("$SL_PID")
    return 0
}

start_sluice() { # name listen status nroutes -> sets SL_PID; 0 if it proxies
    local name=$1 listen=$2 status=$3 n=$4 url host
    mkdir -p "$W/$name"
    sluice_yaml "$listen" "$status" "$n" >"$W/$name/sluice.yaml"
    launch_sluice "$name" || return 1
    if ! wait_port "$listen" "$SL_PID"; then
        SLUICE_NOTE="did not listen on 127.0.0.1:$listen: $(head -c 200 "$W/$name/out.log" | tr -s ' \n' ' ')"
        stop_pid "$SL_PID"; return 1
    fi
    if [ "$n" = 0 ]; then url="http://127.0.0.1:$listen/"; host=bench.local
    else url="http://127.0.0.1:$listen/r/$((n - 1))"; host="h$((n - 1)).bench.local"; fi
    if ! http_ok "$url" -H "Host: $host"; then
        SLUICE_NOTE="does not proxy yet (GET $url gave: $(curl -s -m 3 -o /dev/null -w '%{http_code}' -H "Host: $host" "$url"))"
        stop_pid "$SL_PID"; return 1
    fi
    return 0
}

# ---------------------------------------------------------- stream proxies ----
# Layer 4, one worker each and no logging, in front of the same three backends: redis-server
# (PING round trips), bench/bulk.c (bulk transfers each way) and bench/udpreq.c's UDP echo.
# Each proxy listens on its own ports per backend; haproxy has no UDP proxy.
mkdir -p "$W/nginx-stream" "$W/haproxy-tcp" "$W/sluice-tcp" "$W/sluice-udp" "$W/redis"

# Debian ships the stream module as a dynamic module (libnginx-mod-stream); a build with it
# compiled in needs no load_module.
NGINX_V=$(nginx -V 2>&1)
NGX_STREAM_SO="$(sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p' <<<"$NGINX_V")"
NGX_STREAM_SO="${NGX_STREAM_SO:-/usr/lib/nginx/modules}/ngx_stream_module.so"
NGX_LOAD=""
NGX_STREAM_NOTE=""
if [ -f "$NGX_STREAM_SO" ]; then NGX_LOAD="load_module $NGX_STREAM_SO;"
elif ! grep -qE -- '--with-stream( |$)' <<<"$NGINX_V"; then
    NGX_STREAM_NOTE="no stream module ($NGX_STREAM_SO missing: install libnginx-mod-stream)"
fi
cat >"$W/nginx-stream/nginx.conf" <<EOF
$NGX_LOAD
worker_processes 1;
daemon off;
user root;
pid $W/nginx-stream/nginx.pid;
error_log $W/nginx-stream/error.log warn;
worker_rlimit_nofile $FD_LIMIT;
events { worker_connections 4096; }
stream {
    upstream redis { server 127.0.0.1:$P_REDIS; }
    upstream bulk { server 127.0.0.1:$P_BULK; }
    upstream echo { server 127.0.0.1:$P_ECHO; }
    server { listen 127.0.0.1:$N_REDIS backlog=4096; proxy_pass redis; }
    server { listen 127.0.0.1:$N_BULK backlog=4096; proxy_pass bulk; }
    server { listen 127.0.0.1:$N_UDP udp; proxy_pass echo; }
}
EOF

cat >"$W/haproxy-tcp/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend redis
    bind 127.0.0.1:$H_REDIS
    default_backend redis
backend redis
    server redis 127.0.0.1:$P_REDIS
frontend bulk
    bind 127.0.0.1:$H_BULK
    default_backend bulk
backend bulk
    server bulk 127.0.0.1:$P_BULK
EOF

# TCP and UDP in two sluice instances, so the TCP comparisons run even while the loader
# refuses UDP services. The HTTP listener is required and unused.
sluice_stream_yaml() { # http-port scheme [service backend-port listen-port]...
    local http=$1 scheme=$2
    shift 2
    cat <<EOF
gateway:
  workers: 1
  http:
    listen: ["127.0.0.1:$http"]
  status: false
  access_log: {path: off}
services:
EOF
    while [ $# -ge 3 ]; do
        cat <<EOF
  - name: $1
    type: stream
    upstream:
      scheme: $scheme
      nodes: [{address: 127.0.0.1:$2}]
    routes:
      - {name: $1, server_addr: 127.0.0.1, server_port: $3}
EOF
        shift 3
    done
}
sluice_stream_yaml "$S_HTTP" tcp redis "$P_REDIS" "$S_REDIS" bulk "$P_BULK" "$S_BULK" >"$W/sluice-tcp/sluice.yaml"
sluice_stream_yaml "$U_HTTP" udp echo "$P_ECHO" "$U_UDP" >"$W/sluice-udp/sluice.yaml"

redis_ok() { [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ]; }
bulk_ok() { timeout 10 "$W/bulk" down 127.0.0.1 "$1" 1048576 >/dev/null 2>&1; }
tcp_ok() { redis_ok "$1" && bulk_ok "$2"; } # redis-port bulk-port
udp_ok() { timeout 5 "$W/udpreq" ping 127.0.0.1 "$1"; }

wait_ready() { # pid check [args] -> 0 once the check passes, 1 if the process died or 10 s passed
    local pid=$1 i
    shift
    for i in $(seq 50); do
        [ -d "/proc/$pid" ] || return 1
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

# --------------------------------------------------------------- measures ----
cpu_ticks() { # sum of utime+stime of a process tree, in clock ticks
    local t=0 p
    for p in $(tree_pids "$1"); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo $t
}

rss_kib() { # sum of VmRSS of a process tree
    local t=0 p
    for p in $(tree_pids "$1"); do
        t=$((t + $(awk '/^VmRSS:/{print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
    done
    echo $t
}

dsecs() { # duration (10s, 1m, 500ms, 10) -> seconds, as a decimal
    awk -v d="$1" 'BEGIN{ n=d+0; if (d ~ /ms$/) n/=1000; else if (d ~ /m$/) n*=60; else if (d ~ /h$/) n*=3600; print n }'
}
secs() { # duration -> whole seconds, rounded up past it (for time limits)
    awk -v n="$(dsecs "$1")" 'BEGIN{ print int(n)+1 }'
}

to_ms() { # wrk latency value (245.00us, 1.23ms, 1.02s) -> ms
    awk -v v="$1" 'BEGIN{ n=v+0; if (v ~ /us$/) n/=1000; else if (v ~ /ms$/) n=n; else if (v ~ /m$/) n*=60000; else if (v ~ /s$/) n*=1000; printf "%.3f", n }'
}

# One measured phase: phase_begin before the load, phase_end after it. phase_end sets
# PH_SECS (wall-clock seconds), PH_CPUSEC (CPU seconds the process tree used), PH_CPU (that as
# a percentage of one CPU) and PH_BUSY (how busy each CPU was, all processes: tells a saturated
# proxy core from a client-bound run, and shows load that was not ours).
phase_begin() { # pid file-prefix
    PH_C0=$(cpu_ticks "$1"); PH_T0=$(date +%s.%N); grep '^cpu[0-9]' /proc/stat >"$2.stat0"
}
phase_end() { # pid file-prefix
    local c1 t1
    c1=$(cpu_ticks "$1"); t1=$(date +%s.%N); grep '^cpu[0-9]' /proc/stat >"$2.stat1"
    PH_SECS=$(awk -v a="$PH_T0" -v b="$t1" 'BEGIN{printf "%.6f", b-a}')
    PH_CPUSEC=$(awk -v c="$((c1 - PH_C0))" -v hz="$(getconf CLK_TCK)" 'BEGIN{printf "%.2f", c/hz}')
    PH_CPU=$(awk -v c="$PH_CPUSEC" -v s="$PH_SECS" 'BEGIN{printf "%.0f", 100*c/s}')
    PH_BUSY=$(awk 'NR==FNR{b[$1]=$2+$3+$4+$7+$8+$9; t[$1]=b[$1]+$5+$6; next}
        {bb=$2+$3+$4+$7+$8+$9; tt=bb+$5+$6; printf "%s%s %.0f%%", sep, $1, 100*(bb-b[$1])/(tt-t[$1]); sep=", "}' "$2.stat0" "$2.stat1")
}
per_cpusec() { # amount -> amount per CPU-second of the last phase ("n/a" without a proxy)
    awk -v a="$1" -v c="$PH_CPUSEC" 'BEGIN{ if (c > 0) printf "%.0f", a/c; else print "n/a" }'
}

# Per-round values are appended ("v1 v2 ..."); the summary reports medians.
declare -A RPS P50 P99 ERRS CPU EFF
run_wrk() { # name pid url [wrk args...]
    local name=$1 pid=$2 url=$3 f lim rps p50 p99 errs
    shift 3
    f="$W/wrk-$name-$(( $(wc -w <<<"${RPS[$name]:-}") + 1 )).txt"
    lim=$(( $(secs "$DURATION") + $(secs "$WARMUP") + 30 ))
    if [ "$WARMUP" != 0 ]; then
        "${ON_CLIENT[@]}" timeout "$lim" wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" "$@" "$url" >/dev/null 2>&1
    fi
    phase_begin "$pid" "$f"
    "${ON_CLIENT[@]}" timeout "$lim" wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency "$@" "$url" >"$f" 2>&1
    phase_end "$pid" "$f"
    rps=$(awk '/^Requests\/sec:/{printf "%.0f", $2}' "$f")
    p50=$(to_ms "$(awk '$1=="50%"{print $2}' "$f")")
    p99=$(to_ms "$(awk '$1=="99%"{print $2}' "$f")")
    errs=$(awk '/Non-2xx/{n+=$NF} /Socket errors/{gsub(",",""); n+=$4+$6+$8+$10} END{print n+0}' "$f")
    if [ -z "$rps" ]; then
        echo "bench: wrk against $name failed:" >&2; cat "$f" >&2
        rps=0
    fi
    RPS[$name]="${RPS[$name]:-} $rps"; P50[$name]="${P50[$name]:-} $p50"; P99[$name]="${P99[$name]:-} $p99"
    ERRS[$name]="${ERRS[$name]:-} $errs"; CPU[$name]="${CPU[$name]:-} $PH_CPU"
    # Requests per CPU-second the proxy used: robust to other load stealing the proxy's CPU.
    EFF[$name]="${EFF[$name]:-} $(per_cpusec "$(awk -v r="$rps" -v s="$PH_SECS" 'BEGIN{print r*s}')")"
    log "$name: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errs, proxy CPU $PH_CPU% (busy: $PH_BUSY)"
}

median() { # "v1 v2 ..." [printf format]
    tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk -v f="${2:-%.3f}" '{v[NR]=$1}
        END{ if (NR==0) print "n/a"; else printf f "\n", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2 }'
}
range() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk 'NR==1{a=$1} {b=$1} END{print a "–" b}'; }
total() { tr ' ' '\n' <<<"$1" | awk '{n+=$1} END{print n+0}'; }

# Share of the machine's CPU time busy over one second, before we start anything heavy.
background_busy() {
    local a b
    a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat); sleep 1
    b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN{split(a,x," "); split(b,y," "); printf "%.0f", 100*(y[1]-x[1])/(y[2]-x[2])}'
}

for tool in connhold bulk udpreq; do
    cc -O2 -o "$W/$tool" "$ROOT/bench/$tool.c" || { echo "bench: cannot build $tool" >&2; exit 1; }
done

declare -A RSS0 RSS1 KPC HOLD_OK HOLD_FAIL HOLD_CLOSED
mem_test() { # name pid port
    local name=$1 pid=$2 port=$3 hp out="$W/hold-$1.txt" i
    sleep 1
    RSS0[$name]=$(rss_kib "$pid")
    "${ON_CLIENT[@]}" "$W/connhold" 127.0.0.1 "$port" "$IDLE_CONNS" 200 90 300 >"$out" 2>&1 &
    hp=$!; PIDS+=("$hp")
    for i in $(seq 1000); do grep -q '^READY' "$out" && break; [ -d "/proc/$hp" ] || break; sleep 0.1; done
    sleep 2 # let the proxy settle (deferred frees, timers) before sampling
    RSS1[$name]=$(rss_kib "$pid")
    stop_pid "$hp"
    HOLD_OK[$name]=$(sed -n 's/^READY ok=\([0-9]*\).*/\1/p' "$out"); HOLD_OK[$name]=${HOLD_OK[$name]:-0}
    HOLD_FAIL[$name]=$(sed -n 's/^READY .*fail=\([0-9]*\).*/\1/p' "$out"); HOLD_FAIL[$name]=${HOLD_FAIL[$name]:-?}
    HOLD_CLOSED[$name]=$(sed -n 's/^DONE closed_by_peer_while_idle=\([0-9]*\).*/\1/p' "$out"); HOLD_CLOSED[$name]=${HOLD_CLOSED[$name]:-?}
    if [ "${HOLD_OK[$name]}" -gt 0 ]; then
        KPC[$name]=$(awk -v a="${RSS0[$name]}" -v b="${RSS1[$name]}" -v n="${HOLD_OK[$name]}" 'BEGIN{printf "%.2f", (b-a)/n}')
    else
        KPC[$name]=n/a
    fi
    log "$name: RSS ${RSS0[$name]} -> ${RSS1[$name]} KiB with ${HOLD_OK[$name]} idle connections (${HOLD_FAIL[$name]} failed, ${HOLD_CLOSED[$name]} closed by proxy while idle): ${KPC[$name]} KiB/conn"
    sleep 1
}

# Stream measurements, keyed "<test>-<proxy>" in the same arrays as wrk's; "direct" is the
# load generator against the backend with no proxy (pid 0: no proxy CPU). A run that fails
# counts as 0 in its rate and is left out of the other columns.
declare -A MIBS LOST
FAILED=""
run_failed() { # key file
    echo "bench: $1 failed:" >&2; cat "$2" >&2
    FAILED="$FAILED $1 (round $round)"
    log "$1: failed"
}

run_ping() { # proxy pid port
    local key=ping-$1 pid=$2 port=$3 f n rps p50 p99 cal
    f="$W/$key-$round.csv"
    # redis-benchmark counts requests, not time: a short run first warms up and tells how many
    # requests fill BENCH_DURATION.
    cal=$("${ON_CLIENT[@]}" timeout 60 redis-benchmark -h 127.0.0.1 -p "$port" -t ping_mbulk -c "$CONNS" \
        -n $((CONNS * 200)) -P 1 --csv 2>/dev/null | awk -F, '/^"PING_MBULK"/{gsub(/"/, ""); print $2}')
    n=$(awk -v r="${cal:-0}" -v d="$(dsecs "$DURATION")" -v m=$((CONNS * 200)) 'BEGIN{n=int(r*d); print (n > m) ? n : m}')
    phase_begin "$pid" "$f"
    "${ON_CLIENT[@]}" timeout $(( $(secs "$DURATION") * 3 + 30 )) redis-benchmark -h 127.0.0.1 -p "$port" \
        -t ping_mbulk -c "$CONNS" -n "$n" -P 1 --csv >"$f" 2>&1
    phase_end "$pid" "$f"
    read -r rps p50 p99 <<<"$(awk -F, '/^"PING_MBULK"/{gsub(/"/, ""); printf "%.0f %.3f %.3f", $2, $5, $7}' "$f")"
    if [ -z "$rps" ]; then
        RPS[$key]="${RPS[$key]:-} 0"; run_failed "$key" "$f"; return
    fi
    RPS[$key]="${RPS[$key]:-} $rps"; P50[$key]="${P50[$key]:-} $p50"; P99[$key]="${P99[$key]:-} $p99"
    CPU[$key]="${CPU[$key]:-} $PH_CPU"; EFF[$key]="${EFF[$key]:-} $(per_cpusec "$n")"
    log "$key: $rps req/s ($n PING), p50 $p50 ms, p99 $p99 ms, proxy CPU $PH_CPU% (busy: $PH_BUSY)"
}

run_bulk() { # proxy pid port up|down
    local key=bulk-$4-$1 pid=$2 port=$3 f t mib mibs
    f="$W/$key-$round.txt"
    mib=$(awk -v b="$BULK_BYTES" 'BEGIN{print b/1048576}')
    phase_begin "$pid" "$f"
    "${ON_CLIENT[@]}" timeout $((60 + BULK_BYTES / 8388608)) "$W/bulk" "$4" 127.0.0.1 "$port" "$BULK_BYTES" >"$f" 2>&1
    phase_end "$pid" "$f"
    t=$(sed -n 's/^OK .*seconds=\([0-9.]*\).*/\1/p' "$f")
    if [ -z "$t" ]; then
        MIBS[$key]="${MIBS[$key]:-} 0"; run_failed "$key" "$f"; return
    fi
    mibs=$(awk -v m="$mib" -v t="$t" 'BEGIN{printf "%.0f", m/t}')
    MIBS[$key]="${MIBS[$key]:-} $mibs"; CPU[$key]="${CPU[$key]:-} $PH_CPU"; EFF[$key]="${EFF[$key]:-} $(per_cpusec "$mib")"
    log "$key: $mibs MiB/s ($mib MiB), proxy CPU $PH_CPU% (busy: $PH_BUSY)"
}

run_udp() { # proxy pid port
    local key=udp-$1 pid=$2 port=$3 f lim out n rps p50 p99 lost
    f="$W/$key-$round.txt"
    lim=$(( $(secs "$DURATION") + $(secs "$WARMUP") + 30 ))
    if [ "$WARMUP" != 0 ]; then
        "${ON_CLIENT[@]}" timeout "$lim" "$W/udpreq" load 127.0.0.1 "$port" "$CONNS" "$(dsecs "$WARMUP")" >/dev/null 2>&1
    fi
    phase_begin "$pid" "$f"
    "${ON_CLIENT[@]}" timeout "$lim" "$W/udpreq" load 127.0.0.1 "$port" "$CONNS" "$(dsecs "$DURATION")" >"$f" 2>&1
    phase_end "$pid" "$f"
    out=$(sed -n 's/^OK requests=\([1-9][0-9]*\) lost=\([0-9]*\) .*rps=\([0-9]*\) p50_ms=\([0-9.]*\) p99_ms=\([0-9.]*\)/\1 \2 \3 \4 \5/p' "$f")
    if [ -z "$out" ]; then
        RPS[$key]="${RPS[$key]:-} 0"; run_failed "$key" "$f"; return
    fi
    read -r n lost rps p50 p99 <<<"$out"
    RPS[$key]="${RPS[$key]:-} $rps"; P50[$key]="${P50[$key]:-} $p50"; P99[$key]="${P99[$key]:-} $p99"
    LOST[$key]="${LOST[$key]:-} $lost"; CPU[$key]="${CPU[$key]:-} $PH_CPU"; EFF[$key]="${EFF[$key]:-} $(per_cpusec "$n")"
    log "$key: $rps req/s, p50 $p50 ms, p99 $p99 ms, lost $lost, proxy CPU $PH_CPU% (busy: $PH_BUSY)"
}

# ------------------------------------------------------------------- run ----
BUSY=$(background_busy)
if [ "$BUSY" -gt 10 ]; then
    echo "bench: warning: the machine was already ${BUSY}% busy before the benchmark started; numbers will be noisy" >&2
fi
if want http; then
    log "wrk -t$THREADS -c$CONNS -d$DURATION (warm-up $WARMUP); $IDLE_CONNS idle connections; $PIN_NOTE"

    "${ON_PROXY[@]}" nginx -p "$W/nginx" -c "$W/nginx/nginx.conf" -e "$W/nginx/error.log" >"$W/nginx/out.log" 2>&1 &
    NGINX_PID=$!; PIDS+=("$NGINX_PID")
    "${ON_PROXY[@]}" haproxy -db -f "$W/haproxy/haproxy.cfg" >"$W/haproxy/out.log" 2>&1 &
    HAPROXY_PID=$!; PIDS+=("$HAPROXY_PID")
    # With access logs to a file: nginx's buffered combined log, sluice's default JSON log.
    "${ON_PROXY[@]}" nginx -p "$W/nginx-log" -c "$W/nginx-log/nginx.conf" -e "$W/nginx-log/error.log" >"$W/nginx-log/out.log" 2>&1 &
    NGINX_LOG_PID=$!; PIDS+=("$NGINX_LOG_PID")
    LOGGED=()
    if wait_port "$P_NGINX_LOG" "$NGINX_LOG_PID" && http_ok "http://127.0.0.1:$P_NGINX_LOG/"; then LOGGED+=(nginx-log)
    else echo "bench: nginx with an access log did not start:" >&2; cat "$W/nginx-log/out.log" "$W/nginx-log/error.log" >&2; fi
    if SL_ACCESS_LOG="{path: $W/sluice-log.access.log}" start_sluice sluice-log "$P_SLUICE_LOG" "$P_SLUICE_LOGS" 0; then
        SLUICE_LOG_PID=$SL_PID; LOGGED+=(sluice-log)
    else
        echo "sluice with an access log: not ready ($SLUICE_NOTE)"
    fi
    declare -A LOGGED_PID=([nginx-log]=${NGINX_LOG_PID} [sluice-log]=${SLUICE_LOG_PID:-0})
    declare -A LOGGED_PORT=([nginx-log]=$P_NGINX_LOG [sluice-log]=$P_SLUICE_LOG)
    PROXIES=()
    if wait_port "$P_NGINX" "$NGINX_PID" && http_ok "http://127.0.0.1:$P_NGINX/"; then PROXIES+=(nginx)
    else echo "bench: nginx proxy did not start:" >&2; cat "$W/nginx/out.log" "$W/nginx/error.log" >&2; fi
    if wait_port "$P_HAPROXY" "$HAPROXY_PID" && http_ok "http://127.0.0.1:$P_HAPROXY/"; then PROXIES+=(haproxy)
    else echo "bench: haproxy did not start:" >&2; cat "$W/haproxy/out.log" >&2; fi
    SLUICE_READY=0
    if start_sluice sluice "$P_SLUICE" "$P_STATUS" 0; then
        SLUICE_READY=1; SLUICE_PID=$SL_PID; PROXIES+=(sluice)
    else
        echo "sluice: not ready ($SLUICE_NOTE)"
    fi

    declare -A PID_OF=([nginx]=${NGINX_PID} [haproxy]=${HAPROXY_PID} [sluice]=${SLUICE_PID:-0})
    declare -A PORT_OF=([nginx]=$P_NGINX [haproxy]=$P_HAPROXY [sluice]=$P_SLUICE)

    # Rounds are interleaved (nginx, haproxy, sluice, nginx, ...) so a burst of background load
    # hits every proxy alike rather than one of them; medians are reported.
    for ((round = 1; round <= ROUNDS; round++)); do
        log "round $round/$ROUNDS"
        for p in "${PROXIES[@]}"; do
            run_wrk "$p" "${PID_OF[$p]}" "http://127.0.0.1:${PORT_OF[$p]}/"
        done
        for p in "${LOGGED[@]}"; do
            run_wrk "$p" "${LOGGED_PID[$p]}" "http://127.0.0.1:${LOGGED_PORT[$p]}/"
        done
        if [ "$SLUICE_READY" = 1 ]; then
            run_wrk sluice-plain "$SLUICE_PID" "http://127.0.0.1:$P_SLUICE/c"
            run_wrk sluice-policies "$SLUICE_PID" "http://127.0.0.1:$P_SLUICE/p/c"
        fi
    done
    for p in "${PROXIES[@]}"; do
        mem_test "$p" "${PID_OF[$p]}" "${PORT_OF[$p]}"
    done

    RS_DONE=0
    if [ "$SLUICE_READY" = 1 ]; then
        stop_pid "$SLUICE_PID" # the route-scaling instances take its place on the proxy CPU
        if start_sluice routes-10 "$P_RS1" "$P_RS1S" 10; then
            RS1_PID=$SL_PID
            if start_sluice "routes-$ROUTES" "$P_RS2" "$P_RS2S" "$ROUTES"; then
                RS2_PID=$SL_PID
                for ((round = 1; round <= ROUNDS; round++)); do
                    log "route scaling round $round/$ROUNDS"
                    run_wrk routes-10 "$RS1_PID" "http://127.0.0.1:$P_RS1/r/9" -H "Host: h9.bench.local"
                    run_wrk "routes-$ROUTES" "$RS2_PID" "http://127.0.0.1:$P_RS2/r/$((ROUTES - 1))" \
                        -H "Host: h$((ROUTES - 1)).bench.local"
                done
                RS_RSS10=$(rss_kib "$RS1_PID"); RS_RSSN=$(rss_kib "$RS2_PID")
                stop_pid "$RS2_PID"
                RS_DONE=1
            else
                echo "sluice with $ROUTES routes: not ready ($SLUICE_NOTE)"
            fi
            stop_pid "$RS1_PID"
        else
            echo "sluice with 10 routes: not ready ($SLUICE_NOTE)"
        fi
    fi

    POLICIES=${BENCH_POLICIES-random round_robin weighted hash cookie least_conn ewma}
    BAL_BENCH="$(dirname "$SLUICE_BIN")/sluice-balancer-bench"
    BAL_TABLE=""
    POL_DONE=()
    if [ -n "$POLICIES" ] && [ "$SLUICE_READY" = 1 ]; then
        if [ -x "$BAL_BENCH" ]; then
            log "balancer decision micro-benchmark"
            BAL_TABLE=$("${ON_PROXY[@]}" "$BAL_BENCH" 2000000)
        fi
        for ((round = 1; round <= ROUNDS; round++)); do
            log "balancer policies round $round/$ROUNDS"
            for pol in $POLICIES; do
                if SL_BALANCE=$pol start_sluice "policy-$pol" "$P_POL" "$P_POLS" 0; then
                    run_wrk "policy-$pol" "$SL_PID" "http://127.0.0.1:$P_POL/"
                    stop_pid "$SL_PID"
                    if [ "$round" = 1 ]; then POL_DONE+=("$pol"); fi
                else
                    echo "sluice with balance $pol: not ready ($SLUICE_NOTE)"
                fi
            done
        done
    fi
    for p in ${NGINX_PID:-} ${HAPROXY_PID:-} ${BACKEND_PID:-}; do stop_pid "$p"; done
fi

# Per proxy: its pid for the TCP tests and for the UDP ones (sluice runs two instances), and
# why it is not ready ("<proxy>-udp" for UDP).
declare -A S_PID=([direct]=0) UDP_PID=([direct]=0) S_NOTE
declare -A REDIS_PORT=([direct]=$P_REDIS [nginx]=$N_REDIS [haproxy]=$H_REDIS [sluice]=$S_REDIS)
declare -A BULK_PORT=([direct]=$P_BULK [nginx]=$N_BULK [haproxy]=$H_BULK [sluice]=$S_BULK)
declare -A UDP_PORT=([direct]=$P_ECHO [nginx]=$N_UDP [sluice]=$U_UDP)
STREAM_TCP=(); STREAM_UDP=()
if want stream; then
    log "stream: redis-benchmark -t ping_mbulk -c $CONNS -P 1 for about $DURATION, $BULK_BYTES bytes each way, udpreq load with $CONNS clients for $DURATION (warm-up $WARMUP); $PIN_NOTE"
    "${ON_BACKEND[@]}" redis-server --bind 127.0.0.1 --port "$P_REDIS" --save "" --appendonly no \
        --protected-mode no --dir "$W/redis" --logfile "$W/redis/redis.log" >/dev/null 2>&1 &
    REDIS_PID=$!; PIDS+=("$REDIS_PID")
    "${ON_BACKEND[@]}" "$W/bulk" serve 127.0.0.1 "$P_BULK" >"$W/bulk.log" 2>&1 &
    BULK_PID=$!; PIDS+=("$BULK_PID")
    "${ON_BACKEND[@]}" "$W/udpreq" echo 127.0.0.1 "$P_ECHO" >"$W/udpreq.log" 2>&1 &
    ECHO_PID=$!; PIDS+=("$ECHO_PID")
    if ! wait_ready "$REDIS_PID" redis_ok "$P_REDIS" || ! wait_ready "$BULK_PID" bulk_ok "$P_BULK"; then
        echo "bench: stream backends did not start:" >&2; cat "$W/redis/redis.log" "$W/bulk.log" >&2
    else
        STREAM_TCP+=(direct)
    fi
    if wait_ready "$ECHO_PID" udp_ok "$P_ECHO"; then
        STREAM_UDP+=(direct)
    else
        echo "bench: UDP echo backend did not start:" >&2; cat "$W/udpreq.log" >&2
    fi

    if [ -n "$NGX_STREAM_NOTE" ]; then
        S_NOTE[nginx]=$NGX_STREAM_NOTE
    else
        "${ON_PROXY[@]}" nginx -p "$W/nginx-stream" -c "$W/nginx-stream/nginx.conf" -e "$W/nginx-stream/error.log" \
            >"$W/nginx-stream/out.log" 2>&1 &
        S_PID[nginx]=$!; UDP_PID[nginx]=$!; PIDS+=("$!")
        if [ "${#STREAM_TCP[@]}" -gt 0 ] && wait_ready "${S_PID[nginx]}" tcp_ok "$N_REDIS" "$N_BULK"; then
            STREAM_TCP+=(nginx)
        else S_NOTE[nginx]="did not proxy TCP: $(cat "$W/nginx-stream/out.log" "$W/nginx-stream/error.log" | head -c 300 | tr -s ' \n' ' ')"; fi
        if [ "${#STREAM_UDP[@]}" -gt 0 ] && wait_ready "${S_PID[nginx]}" udp_ok "$N_UDP"; then STREAM_UDP+=(nginx)
        else S_NOTE[nginx-udp]="did not proxy UDP: $(cat "$W/nginx-stream/error.log" | head -c 300 | tr -s ' \n' ' ')"; fi
    fi
    "${ON_PROXY[@]}" haproxy -db -f "$W/haproxy-tcp/haproxy.cfg" >"$W/haproxy-tcp/out.log" 2>&1 &
    S_PID[haproxy]=$!; PIDS+=("${S_PID[haproxy]}")
    if [ "${#STREAM_TCP[@]}" -gt 0 ] && wait_ready "${S_PID[haproxy]}" tcp_ok "$H_REDIS" "$H_BULK"; then
        STREAM_TCP+=(haproxy)
    else S_NOTE[haproxy]="did not proxy TCP: $(head -c 300 "$W/haproxy-tcp/out.log" | tr -s ' \n' ' ')"; fi
    if launch_sluice sluice-tcp; then
        S_PID[sluice]=$SL_PID
        if [ "${#STREAM_TCP[@]}" -gt 0 ] && wait_ready "$SL_PID" tcp_ok "$S_REDIS" "$S_BULK"; then STREAM_TCP+=(sluice)
        else
            SLUICE_NOTE="does not proxy TCP: $(head -c 300 "$W/sluice-tcp/out.log" | tr -s ' \n' ' ')"
            stop_pid "$SL_PID"
        fi
    fi
    if [[ " ${STREAM_TCP[*]} " != *" sluice "* ]]; then
        S_NOTE[sluice]=$SLUICE_NOTE; echo "sluice (TCP stream): not ready ($SLUICE_NOTE)"
    fi
    if launch_sluice sluice-udp; then
        UDP_PID[sluice]=$SL_PID
        if [ "${#STREAM_UDP[@]}" -gt 0 ] && wait_ready "$SL_PID" udp_ok "$U_UDP"; then STREAM_UDP+=(sluice)
        else
            SLUICE_NOTE="does not proxy UDP: $(head -c 300 "$W/sluice-udp/out.log" | tr -s ' \n' ' ')"
            stop_pid "$SL_PID"
        fi
    fi
    if [[ " ${STREAM_UDP[*]} " != *" sluice "* ]]; then
        S_NOTE[sluice-udp]=$SLUICE_NOTE; echo "sluice (UDP stream): not ready ($SLUICE_NOTE)"
    fi

    # Interleaved like the HTTP rounds: each test goes through every proxy in turn.
    for ((round = 1; round <= ROUNDS; round++)); do
        log "stream round $round/$ROUNDS"
        for p in "${STREAM_TCP[@]}"; do run_ping "$p" "${S_PID[$p]}" "${REDIS_PORT[$p]}"; done
        for p in "${STREAM_TCP[@]}"; do
            run_bulk "$p" "${S_PID[$p]}" "${BULK_PORT[$p]}" up
            run_bulk "$p" "${S_PID[$p]}" "${BULK_PORT[$p]}" down
        done
        for p in "${STREAM_UDP[@]}"; do run_udp "$p" "${UDP_PID[$p]}" "${UDP_PORT[$p]}"; done
    done
    for p in "${S_PID[@]}" "${UDP_PID[@]}" "$REDIS_PID" "$BULK_PID" "$ECHO_PID"; do [ "$p" = 0 ] || stop_pid "$p"; done
fi

BUSY_END=$(background_busy)

# --------------------------------------------------------------- summary ----
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 == 0 || a == "" || a == "n/a") print "n/a"; else printf "%.2f", a/b }'; }
has() { local x; for x in "${PROXIES[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
stream_has() { # tcp|udp proxy
    local x
    if [ "$1" = tcp ]; then for x in "${STREAM_TCP[@]}"; do [ "$x" = "$2" ] && return 0; done
    else for x in "${STREAM_UDP[@]}"; do [ "$x" = "$2" ] && return 0; done; fi
    return 1
}
proxy_median() { if [ "$1" = direct ]; then echo "–"; else median "$2" %.0f; fi; } # proxy CPU figures
stream_ratios() { # tcp|udp test label array: sluice's ratios to nginx and haproxy, or why not
    local kind=$1 t=$2 label=$3 o
    local -n arr=$4
    if ! stream_has "$kind" sluice; then
        echo "- $t: sluice not ready ($([ "$kind" = udp ] && echo "${S_NOTE[sluice-udp]:-}" || echo "${S_NOTE[sluice]:-}")); ratios pending"
        return
    fi
    for o in nginx haproxy; do
        stream_has "$kind" "$o" || continue
        echo "- $t, sluice / $o: $label ratio $(ratio "$(median "${arr[$t-sluice]}")" "$(median "${arr[$t-$o]}")"), per proxy CPU-second ratio $(ratio "$(median "${EFF[$t-sluice]}")" "$(median "${EFF[$t-$o]}")") (higher is better; target at least 1.00 against nginx)"
    done
}

{
    echo "# sluice benchmark results"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "- machine: $NCPU CPUs ($(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)"
    echo "- $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(haproxy -v | head -n1 | awk '{print "haproxy " $3}'), $(want http && wrk -v 2>&1 | head -n1 | awk '{print "wrk " $2 ", "}')$(want stream && redis-server --version | awk '{sub("v=", "", $3); print "redis " $3 ", "}')sluice: $SLUICE_BIN"
    echo "- $ROUNDS interleaved rounds, medians; one worker per proxy"
    if want http; then echo "- HTTP load: \`wrk -t$THREADS -c$CONNS -d$DURATION --latency\` after a $WARMUP warm-up; upstream keep-alive"; fi
    if want stream; then echo "- stream load: redis-benchmark PING ($CONNS connections, about $DURATION), $BULK_BYTES bytes each way, UDP with $CONNS clients for $DURATION after a $WARMUP warm-up"; fi
    echo "- other CPU use on the machine (1 s samples, none of the benchmark processes under load): ${BUSY}% before the run, ${BUSY_END}% after"
    echo "- placement: $PIN_NOTE"
    echo
    if want http; then
        echo "## Throughput and latency (GET /, 12-byte body)"
        echo
        echo "| proxy | requests/s (median) | requests/s (min–max) | p50 ms | p99 ms | errors | proxy CPU % | requests per proxy CPU-second |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for p in nginx haproxy sluice; do
            if has "$p"; then
                echo "| $p | $(median "${RPS[$p]}" %.0f) | $(range "${RPS[$p]}") | $(median "${P50[$p]}") | $(median "${P99[$p]}") | $(total "${ERRS[$p]}") | $(median "${CPU[$p]}" %.0f) | $(median "${EFF[$p]}" %.0f) |"
            else echo "| $p | not ready | | | | | | |"; fi
        done
        echo
        if has sluice; then
            for o in nginx haproxy; do
                has "$o" || continue
                echo "- sluice / $o: requests/s ratio $(ratio "$(median "${RPS[sluice]}")" "$(median "${RPS[$o]}")"), p99 ratio $(ratio "$(median "${P99[sluice]}")" "$(median "${P99[$o]}")"), requests per CPU-second ratio $(ratio "$(median "${EFF[sluice]}")" "$(median "${EFF[$o]}")") (requests/s and per CPU-second: higher is better; p99: lower is better)"
            done
        else
            echo "- sluice: not ready ($SLUICE_NOTE); ratios pending"
        fi
        echo
        echo "## With an access log to a file"
        echo
        echo "The same GET /, in the same rounds, through a second nginx writing its access log to a file (\`access_log FILE combined buffer=64k flush=1s\`) and a second sluice writing its default access log (JSON, \`buffer: 64KiB\`, \`flush: 1s\`) to a file."
        echo
        echo "| proxy | requests/s (median) | requests/s (min–max) | p50 ms | p99 ms | errors | proxy CPU % | requests per proxy CPU-second |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for p in nginx-log sluice-log; do
            if [[ " ${LOGGED[*]} " == *" $p "* ]]; then
                echo "| ${p%-log} with access log | $(median "${RPS[$p]}" %.0f) | $(range "${RPS[$p]}") | $(median "${P50[$p]}") | $(median "${P99[$p]}") | $(total "${ERRS[$p]}") | $(median "${CPU[$p]}" %.0f) | $(median "${EFF[$p]}" %.0f) |"
            else echo "| ${p%-log} with access log | not ready | | | | | | |"; fi
        done
        echo
        if [[ " ${LOGGED[*]} " == *" sluice-log "* ]]; then
            if [[ " ${LOGGED[*]} " == *" nginx-log "* ]]; then
                echo "- sluice / nginx, both logging: requests/s ratio $(ratio "$(median "${RPS[sluice-log]}")" "$(median "${RPS[nginx-log]}")"), requests per CPU-second ratio $(ratio "$(median "${EFF[sluice-log]}")" "$(median "${EFF[nginx-log]}")") (target: at least 1.00)"
            fi
            if has sluice; then
                echo "- sluice logging / sluice not logging: requests/s ratio $(ratio "$(median "${RPS[sluice-log]}")" "$(median "${RPS[sluice]}")"), requests per CPU-second ratio $(ratio "$(median "${EFF[sluice-log]}")" "$(median "${EFF[sluice]}")") (target: at least 0.90)"
            fi
        fi
        echo
        echo "## sluice with every HTTP policy on one route"
        echo
        echo "The same sluice, in the same rounds: GET /c on a route without policies, and GET /p/c on a route with every HTTP policy: ip_access, local_rate_limit (never refusing), path_rewrite (to /c), request_headers, timeout, retry, websocket, response_headers and cookie_rewrite (the backend sets a cookie on /c)."
        echo
        if has sluice; then
            echo "| route | requests/s (median) | requests/s (min–max) | p50 ms | p99 ms | errors | requests per proxy CPU-second |"
            echo "|---|---:|---:|---:|---:|---:|---:|"
            for k in sluice-plain sluice-policies; do
                echo "| ${k#sluice-} | $(median "${RPS[$k]}" %.0f) | $(range "${RPS[$k]}") | $(median "${P50[$k]}") | $(median "${P99[$k]}") | $(total "${ERRS[$k]}") | $(median "${EFF[$k]}" %.0f) |"
            done
            echo
            echo "- policies / plain: requests/s ratio $(ratio "$(median "${RPS[sluice-policies]}")" "$(median "${RPS[sluice-plain]}")"), requests per CPU-second ratio $(ratio "$(median "${EFF[sluice-policies]}")" "$(median "${EFF[sluice-plain]}")") (target: at least 0.90)"
        else
            echo "- sluice: not ready ($SLUICE_NOTE)"
        fi
        echo
        echo "## Memory of idle keep-alive connections"
        echo
        echo "$IDLE_CONNS client connections, one request answered on each, then all held open idle; RSS is the sum of VmRSS over the proxy's processes."
        echo
        echo "| proxy | RSS before KiB | RSS with idle conns KiB | connections ok / failed | closed by proxy while idle | KiB per idle connection |"
        echo "|---|---:|---:|---:|---:|---:|"
        for p in nginx haproxy sluice; do
            if has "$p"; then echo "| $p | ${RSS0[$p]} | ${RSS1[$p]} | ${HOLD_OK[$p]} / ${HOLD_FAIL[$p]} | ${HOLD_CLOSED[$p]} | ${KPC[$p]} |"
            else echo "| $p | not ready | | | | |"; fi
        done
        echo
        if has sluice; then
            for o in nginx haproxy; do
                has "$o" || continue
                echo "- sluice / $o: KiB per idle connection ratio $(ratio "${KPC[sluice]}" "${KPC[$o]}") (lower is better)"
            done
        else
            echo "- sluice: pending"
        fi
        echo
        echo "## sluice route scaling (exact host + path per route, requesting the last route)"
        echo
        if [ "$RS_DONE" = 1 ]; then
            echo "| routes | requests/s (median) | requests/s (min–max) | p50 ms | p99 ms | errors | proxy CPU % | requests per proxy CPU-second | sluice RSS KiB |"
            echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
            for r in 10 "$ROUTES"; do
                k="routes-$r"; rss=$RS_RSS10; [ "$r" = 10 ] || rss=$RS_RSSN
                echo "| $r | $(median "${RPS[$k]}" %.0f) | $(range "${RPS[$k]}") | $(median "${P50[$k]}") | $(median "${P99[$k]}") | $(total "${ERRS[$k]}") | $(median "${CPU[$k]}" %.0f) | $(median "${EFF[$k]}" %.0f) | $rss |"
            done
            echo
            echo "- $ROUTES routes / 10 routes: requests/s ratio $(ratio "$(median "${RPS[routes-$ROUTES]}" %.0f)" "$(median "${RPS[routes-10]}" %.0f)"), requests per CPU-second ratio $(ratio "$(median "${EFF[routes-$ROUTES]}" %.0f)" "$(median "${EFF[routes-10]}" %.0f)") (1.00 = matching cost flat)"
        else
            echo "- pending: sluice not ready ($SLUICE_NOTE)"
        fi
        echo
        echo "## sluice balancers"
        echo
        if [ -n "$BAL_TABLE" ]; then
            echo "Cost of one decision (sluice-balancer-bench, 2,000,000 decisions each, keys varying for hash and cookie):"
            echo
            echo "$BAL_TABLE"
            echo
        fi
        if [ "${#POL_DONE[@]}" -gt 0 ]; then
            echo "Proxy throughput with each policy, 3 nodes (the backend on 127.0.0.1-3, weights 1:2:3):"
            echo
            echo "| policy | requests/s (median) | p99 ms | requests per proxy CPU-second | vs round_robin (per CPU-second) |"
            echo "|---|---:|---:|---:|---:|"
            for pol in "${POL_DONE[@]}"; do
                k="policy-$pol"
                echo "| $pol | $(median "${RPS[$k]}" %.0f) | $(median "${P99[$k]}") | $(median "${EFF[$k]}" %.0f) | $(ratio "$(median "${EFF[$k]}" %.0f)" "$(median "${EFF[policy-round_robin]:-}" %.0f)") |"
            done
        else
            echo "- skipped (BENCH_POLICIES empty or sluice not ready)"
        fi
        echo
    else
        echo "## HTTP"
        echo
        echo "- skipped (BENCH_SECTIONS=\"$SECTIONS\")"
        echo
    fi
    echo "## Stream proxying (TCP and UDP)"
    echo
    if want stream; then
        echo "nginx's stream module, haproxy in TCP mode and sluice stream services, one worker each and no logging, in front of the same backends. \"direct\" is the load generator against the backend with no proxy: the ceiling of the load side on this machine (a proxy close to it is limited by the client and backend, not by itself)."
        echo
        echo "### Request/response over TCP (redis-benchmark PING)"
        echo
        echo "\`redis-benchmark -t ping_mbulk -c $CONNS -P 1 --csv\` for about $DURATION each, through each proxy to one redis-server (no persistence)."
        echo
        echo "| proxy | requests/s (median) | requests/s (min–max) | p50 ms | p99 ms | proxy CPU % | requests per proxy CPU-second |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for p in direct nginx haproxy sluice; do
            k=ping-$p
            if stream_has tcp "$p"; then
                echo "| $p | $(median "${RPS[$k]}" %.0f) | $(range "${RPS[$k]}") | $(median "${P50[$k]}") | $(median "${P99[$k]}") | $(proxy_median "$p" "${CPU[$k]}") | $(proxy_median "$p" "${EFF[$k]}") |"
            else echo "| $p | not ready: ${S_NOTE[$p]:-no backend} | | | | | |"; fi
        done
        echo
        stream_ratios tcp ping "requests/s" RPS
        echo
        echo "### Bulk throughput ($(awk -v b="$BULK_BYTES" 'BEGIN{print b/1048576}') MiB each way)"
        echo
        echo "One connection per transfer (bench/bulk.c): up = client to backend, down = backend to client. Both ends send with sendfile(2) and discard with recv(MSG_TRUNC), so they cost little next to the proxy."
        echo
        echo "| proxy | up MiB/s (median) | up (min–max) | down MiB/s (median) | down (min–max) | proxy CPU % up / down | MiB per proxy CPU-second up / down |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for p in direct nginx haproxy sluice; do
            u=bulk-up-$p; d=bulk-down-$p
            if stream_has tcp "$p"; then
                echo "| $p | $(median "${MIBS[$u]}" %.0f) | $(range "${MIBS[$u]}") | $(median "${MIBS[$d]}" %.0f) | $(range "${MIBS[$d]}") | $(proxy_median "$p" "${CPU[$u]}") / $(proxy_median "$p" "${CPU[$d]}") | $(proxy_median "$p" "${EFF[$u]}") / $(proxy_median "$p" "${EFF[$d]}") |"
            else echo "| $p | not ready: ${S_NOTE[$p]:-no backend} | | | | | |"; fi
        done
        echo
        stream_ratios tcp bulk-up "up MiB/s" MIBS
        stream_ratios tcp bulk-down "down MiB/s" MIBS
        echo
        echo "### Request/response over UDP (bench/udpreq.c)"
        echo
        echo "$CONNS clients, each its own UDP socket (one proxy session each) with one 32-byte request in flight, for $DURATION each, to an echo backend; a request unanswered for 200 ms counts as lost. haproxy has no UDP proxy."
        echo
        echo "| proxy | requests/s (median) | requests/s (min–max) | p50 ms | p99 ms | lost | proxy CPU % | requests per proxy CPU-second |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|"
        for p in direct nginx sluice; do
            k=udp-$p; nk=$p; [ "$p" = direct ] || nk=$p-udp
            if stream_has udp "$p"; then
                echo "| $p | $(median "${RPS[$k]}" %.0f) | $(range "${RPS[$k]}") | $(median "${P50[$k]}") | $(median "${P99[$k]}") | $(total "${LOST[$k]}") | $(proxy_median "$p" "${CPU[$k]}") | $(proxy_median "$p" "${EFF[$k]}") |"
            else echo "| $p | not ready: ${S_NOTE[$nk]:-${S_NOTE[$p]:-no backend}} | | | | | | |"; fi
        done
        echo "| haproxy | no UDP proxy | | | | | | |"
        echo
        stream_ratios udp udp "requests/s" RPS
        if [ -n "$FAILED" ]; then
            echo
            echo "- failed runs (0 in the rates, left out of the other columns):$FAILED"
        fi
    else
        echo "- skipped (BENCH_SECTIONS=\"$SECTIONS\")"
    fi
    echo
    echo "## Every measurement, in order"
    echo
    cat "$W/log.txt"
} >"$W/summary.md"

mkdir -p "$(dirname "$OUT")"
cp "$W/summary.md" "$OUT"
echo
cat "$W/summary.md"
echo
echo "(written to $OUT)"
