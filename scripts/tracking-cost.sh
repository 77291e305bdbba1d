#!/usr/bin/env bash
# What tracking and idempotency keys cost, measured on loopback against the SENS mock (release build, as the image
# builds it):
#   1. latency of a send, untracked vs tracked (the record committed before the 202) vs keyed (the key claimed
#      before the send and its answer committed before the 202) vs both, and of a replay, with wrk;
#   2. SENS calls per tracked message (the tracker's calls counted in /metrics), SMS and AlimTalk;
#   3. RSS with N tracked requests open (recipients ending 9999 never complete).
#   scripts/tracking-cost.sh [open requests, default 10000]
#   PART=1 runs part 1 only; STORE=postgres://… (and PGPASSWORD) measures the PostgreSQL store; SENSGATE_BIN=… uses
#   a release binary built elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
open_requests="${1:-10000}"
export PATH="/opt/swift/usr/bin:$PATH"
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq wrk >/dev/null; }
if [ -n "${SENSGATE_BIN:-}" ]; then
  bin="$SENSGATE_BIN"  # a release binary built elsewhere
else
  build=(swift build -c release --product sensgate --static-swift-stdlib --scratch-path .build-static)
  "${build[@]}" > /tmp/sensgate-tracking-build.log 2>&1 || { cat /tmp/sensgate-tracking-build.log; exit 1; }
  bin="$("${build[@]}" --show-bin-path)/sensgate"
fi
work=$(mktemp -d /tmp/sensgate-tracking.XXXX)
base=$((40000 + RANDOM % 10000)); mock=$base; gw=$((base + 1))
export NCP_ACCESS_KEY=TRACKINGCOST NCP_SECRET_KEY=tracking-cost-secret
sms="ncp:sms:kr:500000000001:sens"; at="ncp:kkobizmsg:kr:270000000007:sens"
"$bin" mock --listen "127.0.0.1:$mock" --delivery-delay 3 >/dev/null 2>&1 & mock_pid=$!
# STORE=postgres://user@host:port/db (with PGPASSWORD) measures the PostgreSQL store instead of the embedded one.
"$bin" serve --listen "127.0.0.1:$gw" --upstream "http://127.0.0.1:$mock" --data-dir "$work/data" --log-level warning \
  ${STORE:+--store "$STORE"} \
  --sms-service-id "$sms" --alimtalk-service-id "$at" >/dev/null 2>"$work/serve.err" & gw_pid=$!
trap 'kill $gw_pid $mock_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gw/healthz" >/dev/null && break; sleep 0.1; done
metric() { curl -s "http://127.0.0.1:$gw/metrics" | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { print s + 0 }'; }
send_lua() {  # name, track header value, recipient, keys (none, unique: a new key per request, same: one key) → a wrk script
  cat > "$work/send-$1.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"type":"SMS","from":"0212345678","content":"hi","messages":[{"to":"$3"}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Sensgate-Track"] = "$2"
local keys, run, count = "$4", "$RANDOM$RANDOM", 0
if keys == "same" then wrk.headers["Idempotency-Key"] = "replayed-" .. run end
request = function()
  if keys == "unique" then
    count = count + 1
    wrk.headers["Idempotency-Key"] = "key-" .. run .. "-" .. count
  end
  return wrk.format()
end
LUA
}
send_lua false false 01012345678 none; send_lua true true 01011119999 none
send_lua keyed false 01012345678 unique; send_lua keyed-tracked true 01011119999 unique; send_lua replay false 01012345678 same
echo "1. latency of a send (wrk -t1 -c8 -d5s; tracked: the record's commit before the 202; keyed: the key's claim before"
echo "   the send and its answer's commit before the 202, a new key per request; replay: one key, answered from the store)"
for kind in false true keyed keyed-tracked replay; do
  wrk -t1 -c8 -d5s --latency -s "$work/send-$kind.lua" "http://127.0.0.1:$gw/sms/v2/services/$sms/messages" > "$work/wrk-$kind.txt"
  printf '   %-14s %10s req/s  p50 %8s  p99 %8s\n' "$(case $kind in false) echo untracked;; true) echo tracked;; *) echo $kind;; esac)" \
    "$(awk '/Requests\/sec/ {print $2}' "$work/wrk-$kind.txt")" \
    "$(awk '$1=="50%" {print $2}' "$work/wrk-$kind.txt")" "$(awk '$1=="99%" {print $2}' "$work/wrk-$kind.txt")"
done
echo "   keys claimed $(metric 'sensgate_idempotency_total{outcome="claimed"'), replayed $(metric 'sensgate_idempotency_total{outcome="replayed"'), in progress $(metric 'sensgate_idempotency_total{outcome="in_progress"'); sends SENS received: $(curl -s "http://127.0.0.1:$gw/metrics" | awk '/^sensgate_upstream_requests_total\{route="\/sms\/v2"/ {s += $NF} END {print s + 0}')"
tracked_by_wrk=$(awk '/requests in/ {print $1}' "$work/wrk-true.txt")
[ "${PART:-all}" = 1 ] && exit 0

echo "2. SENS calls per tracked message (100 SMS and 100 AlimTalk with SMS failover, one recipient each, 3 s to complete)"
# A fresh gateway for this part: the open requests above would share the tracker's budget.
kill $gw_pid; wait $gw_pid 2>/dev/null || true
rm -rf "$work/data"
# STORE=postgres://user@host:port/db (with PGPASSWORD) measures the PostgreSQL store instead of the embedded one.
"$bin" serve --listen "127.0.0.1:$gw" --upstream "http://127.0.0.1:$mock" --data-dir "$work/data" --log-level warning \
  ${STORE:+--store "$STORE"} \
  --sms-service-id "$sms" --alimtalk-service-id "$at" >/dev/null 2>"$work/serve.err" & gw_pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gw/healthz" >/dev/null && break; sleep 0.1; done
for channel in sms alimtalk; do
  before=$(metric 'sensgate_upstream_requests_total{route="tracker"')
  for i in $(seq 100); do
    if [ $channel = sms ]; then body='{"type":"SMS","from":"0212345678","content":"hi","messages":[{"to":"0101234'$(printf %04d "$i")'"}]}'; target="/sms/v2/services/$sms/messages"
    else body='{"plusFriendId":"@x","templateCode":"T","messages":[{"to":"0100000'3019'","useSmsFailover":true}]}'; target="/alimtalk/v2/services/$at/messages"; fi
    curl -s -o /dev/null -H 'X-Sensgate-Track: true' -H 'Content-Type: application/json' -d "$body" "http://127.0.0.1:$gw$target"
  done
  for _ in $(seq 600); do [ "$(metric 'sensgate_tracked_requests{state="tracking"}')" = 0 ] && [ "$(metric 'sensgate_tracked_requests{state="completed"}')" -ge 100 ] && break; sleep 0.5; done
  after=$(metric 'sensgate_upstream_requests_total{route="tracker"')
  printf '   %-9s %s calls for 100 messages: %s per message\n' "$channel" "$((after - before))" "$(awk -v c=$((after - before)) 'BEGIN {printf "%.2f", c / 100}')"
  kill $gw_pid; wait $gw_pid 2>/dev/null || true; rm -rf "$work/data"
  # STORE=postgres://user@host:port/db (with PGPASSWORD) measures the PostgreSQL store instead of the embedded one.
"$bin" serve --listen "127.0.0.1:$gw" --upstream "http://127.0.0.1:$mock" --data-dir "$work/data" --log-level warning \
  ${STORE:+--store "$STORE"} \
    --sms-service-id "$sms" --alimtalk-service-id "$at" >/dev/null 2>"$work/serve.err" & gw_pid=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gw/healthz" >/dev/null && break; sleep 0.1; done
done

echo "3. RSS with $open_requests tracked requests open"
rss() { awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status"; }
idle=$(rss)
sent=0
while [ "$sent" -lt "$open_requests" ]; do
  wrk -t1 -c8 -d2s -s "$work/send-true.lua" "http://127.0.0.1:$gw/sms/v2/services/$sms/messages" > "$work/wrk-open.txt"
  sent=$(metric 'sensgate_tracked_requests{state="tracking"}')
  sleep 5.5  # the gauge is counted every 5 s
  sent=$(metric 'sensgate_tracked_requests{state="tracking"}')
done
sleep 20  # the tracker works through them (track-rate 20 calls/s)
echo "   idle ${idle} kB; with $(metric 'sensgate_tracked_requests{state="tracking"}') open requests ${rss_now:-$(rss)} kB; data-dir $(du -sk "$work/data" | cut -f1) kB"
echo "   (wrk's tracked-send run above recorded $tracked_by_wrk sends too)"
rm -rf "$work"
