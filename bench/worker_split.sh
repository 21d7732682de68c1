#!/bin/bash
# Each worker's share of a wrk keep-alive load (2 workers, hello world): the
# connections each holds mid-run, and the bytes each wrote (wchar of
# /proc/PID/io; every response is the same size).
# usage: bench/worker_split.sh BUILD/gallop [gallop flags, e.g. --reuse-port]
# Loopback only: 3 seconds of wrk -t2 -c64.
BIN=$1
shift
APPS=$(cd "$(dirname "$0")/apps" && pwd)
LOG=$(mktemp)
OUT=$(mktemp)
PORT=$(/usr/bin/python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$BIN" --bind 127.0.0.1:$PORT --workers 2 --chdir "$APPS" "$@" hello:app >"$LOG" 2>&1 &
M=$!
for _ in $(seq 100); do [ "$(grep -c 'worker [0-9]* ready' "$LOG")" -ge 2 ] && break; sleep 0.1; done
W=$(cat /proc/$M/task/$M/children)
declare -A before
for w in $W; do before[$w]=$(awk '/^wchar/{print $2}' /proc/$w/io); done
wrk -t2 -c64 -d3 http://127.0.0.1:$PORT/ >"$OUT" &
WRK=$!
sleep 1.5
for w in $W; do echo "worker $w holds $(($(ls -l /proc/$w/fd | grep -c socket) - 1)) connections"; done
wait $WRK
grep "Requests/sec" "$OUT"
tot=0
declare -A d
for w in $W; do
    d[$w]=$(($(awk '/^wchar/{print $2}' /proc/$w/io) - ${before[$w]}))
    tot=$((tot + d[$w]))
done
for w in $W; do echo "worker $w wrote $((100 * d[$w] / tot))%"; done
kill $M
wait $M 2>/dev/null
rm -f "$LOG" "$OUT"
