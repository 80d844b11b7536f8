#!/usr/bin/env bash
# sluice's user-space instructions per proxied request, counted by valgrind (run by
# `make bench-cost`). Unlike requests/s, the count does not move with other load on the machine,
# so two builds can be compared on a shared one: a change that costs 3 % shows as 3 %.
#
#   bash bench/cost.sh [BIN ...]     default: build/sluice; e.g. an older build and this one
#
# For each binary and each route (GET / on a route without policies, GET /p/c on one with every
# HTTP policy, as in bench/run.sh): sluice runs under callgrind in front of an nginx backend;
# after a warm-up the counters are zeroed, COST_REQUESTS requests (default 20000) are sent by
# h2load over 50 keep-alive connections, and the instructions counted divided by the requests
# are printed. System calls and the kernel's work are not counted: this is what the code costs,
# not what a request costs the machine (make bench measures that).
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
N=${COST_REQUESTS:-20000}
[ $# -gt 0 ] || set -- "$ROOT/build/sluice"
for tool in valgrind callgrind_control h2load nginx curl; do
    command -v "$tool" >/dev/null 2>&1 || { echo "cost: missing $tool (run scripts/install-deps)" >&2; exit 1; }
done

W=$(mktemp -d /tmp/sluice-cost.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$W"
}
trap cleanup EXIT INT TERM

read -r P_BACKEND P_SLUICE <<<"$(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')"

cat >"$W/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $W/nginx.pid;
error_log $W/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $W/body;
    proxy_temp_path $W/proxy;
    fastcgi_temp_path $W/fastcgi;
    uwsgi_temp_path $W/uwsgi;
    scgi_temp_path $W/scgi;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$P_BACKEND;
        location / { default_type text/plain; return 200 "hello world\n"; }
        location = /c {
            default_type text/plain;
            add_header Set-Cookie "session=abc123; Path=/app; Domain=backend.local; HttpOnly";
            return 200 "hello world\n";
        }
    }
}
EOF
nginx -c "$W/nginx.conf" >/dev/null 2>&1 &
PIDS+=($!)

cat >"$W/sluice.yaml" <<EOF
gateway:
  workers: 1
  http:
    listen: ["127.0.0.1:$P_SLUICE"]
  status: false
  access_log: {path: off}
services:
  - name: cost
    upstream:
      keepalive: {max_idle: 256}
      nodes: [{address: 127.0.0.1:$P_BACKEND}]
    routes:
      - {name: all, paths: ["/*"]}
EOF
cat "$ROOT/bench/every-policy-route.yaml" >>"$W/sluice.yaml"

# The instructions counted since the last zeroing, from a fresh dump of pid's counters.
counted() { # pid tag
    rm -f "$W/cg.out".*
    callgrind_control -d "$2" "$1" >/dev/null 2>&1
    sleep 0.5
    awk '/^summary:|^totals:/ {print $2; exit}' "$W"/cg.out.* 2>/dev/null
}

printf '%-40s %-8s %14s\n' binary route "instructions/request"
for bin in "$@"; do
    [ -x "$bin" ] || { echo "cost: no binary at $bin" >&2; exit 1; }
    valgrind --tool=callgrind --callgrind-out-file="$W/cg.out.%p" "$bin" run -c "$W/sluice.yaml" \
        >"$W/sluice.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$P_SLUICE/" && break
        sleep 0.2
    done
    for route in /:plain /p/c:policies; do
        url="http://127.0.0.1:$P_SLUICE${route%%:*}"
        h2load --h1 -n 2000 -c 50 "$url" >/dev/null 2>&1 # warm-up: pools, buffers, caches
        callgrind_control -z "$pid" >/dev/null 2>&1
        out=$(h2load --h1 -n "$N" -c 50 "$url" 2>&1)
        if ! grep -q "status codes: $N 2xx" <<<"$out"; then
            echo "cost: $bin: not every request to $url succeeded:" >&2
            grep -E '^(requests|status codes):' <<<"$out" >&2
            exit 1
        fi
        ir=$(counted "$pid" "${route##*:}")
        [ -n "$ir" ] || { echo "cost: no count from callgrind for $bin" >&2; exit 1; }
        printf '%-40s %-8s %14d\n' "$bin" "${route##*:}" $((ir / N))
    done
    kill "$pid"
    wait "$pid" 2>/dev/null
done
