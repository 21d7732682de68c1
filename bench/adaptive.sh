#!/bin/bash
# Adaptive workers under a load that rises and falls: wrk in 5 s slices at
# 1, 4, 16, 4 and 1 connections, then 40 s without load (0), and after each
# slice the workers running
# (gallop_workers{kind="current"} from /metrics), req/s and p99. Prints a
# markdown table, then the master's scaling lines.
# usage: bench/adaptive.sh BUILD/gallop [gallop flags; default --workers-min 1 --workers-max 4]
# Loopback only; about 3 minutes.
BIN=$1
shift
FLAGS=("$@")
[ ${#FLAGS[@]} -eq 0 ] && FLAGS=(--workers-min 1 --workers-max 4)
APPS=$(cd "$(dirname "$0")/apps" && pwd)
LOG=$(mktemp)
OUT=$(mktemp)
free_port() { /usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
PORT=$(free_port)
MPORT=$(free_port)
"$BIN" --bind 127.0.0.1:$PORT --metrics-bind 127.0.0.1:$MPORT --chdir "$APPS" "${FLAGS[@]}" adaptive:app >"$LOG" 2>&1 &
M=$!
for _ in $(seq 100); do grep -q 'worker [0-9]* ready' "$LOG" && break; sleep 0.1; done
workers() { curl -s http://127.0.0.1:$MPORT/metrics | awk '/^gallop_workers\{kind="current"\}/{print $2}'; }
echo "| t (s) | connections | workers after | req/s | p99 |"
echo "|---|---|---|---|---|"
t=0
# slices of 5 s: connections for each
for c in 1 1 4 4 4 4 16 16 16 16 16 16 4 4 4 4 1 1 1 1 1 1 1 1 1 1 0 0 0 0 0 0 0 0; do
    if [ "$c" = 0 ]; then
        sleep 5
        t=$((t + 5))
        echo "| $t | 0 | $(workers) | - | - |"
        continue
    fi
    wrk -t1 -c$c -d5s --latency --timeout 10s http://127.0.0.1:$PORT/ >"$OUT"
    t=$((t + 5))
    rps=$(awk '/Requests\/sec/{printf "%.0f", $2}' "$OUT")
    p99=$(awk '$1=="99%"{print $2}' "$OUT")
    err=$(grep -E "Socket errors|Non-2xx" "$OUT" | tr '\n' ' ')
    echo "| $t | $c | $(workers) | $rps | $p99${err:+ ($err)} |"
done
echo
grep -E "scaling|not scaling" "$LOG" | sed 's/^\[[^]]*\] \[[0-9]*\] \[INFO\] /    /'
kill $M
wait $M 2>/dev/null
rm -f "$LOG" "$OUT"
