#!/usr/bin/env bash
# Soak: drives a release build of sensgate at high concurrency for a fixed time, on loopback only, against the
# project's own SENS mock, and reports errors and RSS over time. Fails when RSS keeps growing in the second half
# (more than 10% and 8 MB from the midpoint sample to the end) or when any request failed.
#   scripts/soak.sh [seconds] [connections]      default 60 s, 64 connections
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-60}"
connections="${2:-64}"
export PATH="/opt/swift/usr/bin:$PATH"
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq wrk >/dev/null; }
swift build -c release --product sensgate > /tmp/sensgate-soak-build.log 2>&1 || { cat /tmp/sensgate-soak-build.log; exit 1; }
bin="$(swift build -c release --show-bin-path)/sensgate"

export NCP_ACCESS_KEY=SOAKACCESSKEY
export NCP_SECRET_KEY="soak-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
mock_port=$((20000 + RANDOM % 10000)); gw_port=$((mock_port + 1))
"$bin" mock --listen "127.0.0.1:$mock_port" >/dev/null &
mock_pid=$!
SENSGATE_LOG_LEVEL=warning "$bin" serve --listen "127.0.0.1:$gw_port" --upstream "http://127.0.0.1:$mock_port" \
  --sms-service-id ncp:sms:kr:1:soak >/dev/null &
gw_pid=$!
trap 'kill $gw_pid $mock_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gw_port/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status"; }
echo "idle RSS: $(rss) kB"
lookup="http://127.0.0.1:$gw_port/v1/results/sms/sms-delivered-0001"
passthrough="http://127.0.0.1:$gw_port/sms/v2/services/ncp:sms:kr:1:soak/messages?requestId=RSMA-demo-0001"
half=$((connections / 2))
wrk -t1 -c"$half" -d"${duration}s" --latency "$lookup" > /tmp/soak-lookup.txt &
wrk1=$!
wrk -t1 -c"$half" -d"${duration}s" --latency "$passthrough" > /tmp/soak-passthrough.txt &
wrk2=$!
samples=()
for i in 1 2 3 4; do
  sleep "$(awk "BEGIN {print $duration / 4}")"
  samples+=("$(rss)")
  echo "RSS after $((i * 25))%: ${samples[-1]} kB"
done
wait $wrk1 $wrk2
echo "--- /v1/results lookup";  grep -E 'Requests/sec|Non-2xx|Socket errors|requests in|99%' /tmp/soak-lookup.txt
echo "--- passthrough";          grep -E 'Requests/sec|Non-2xx|Socket errors|requests in|99%' /tmp/soak-passthrough.txt
kill -TERM $gw_pid; wait $gw_pid; echo "gateway exit after SIGTERM: $?"

errors=$(cat /tmp/soak-lookup.txt /tmp/soak-passthrough.txt | grep -cE 'Non-2xx|Socket errors' || true)
mid=${samples[1]}; end=${samples[3]}
growth=$((end - mid))
echo "RSS growth over the second half: ${growth} kB (midpoint ${mid} kB, end ${end} kB)"
if [ "$errors" -ne 0 ]; then echo "soak: FAILED (errors)"; exit 1; fi
if [ "$growth" -gt 8192 ] && [ $((growth * 10)) -gt "$mid" ]; then echo "soak: FAILED (RSS still growing)"; exit 1; fi
echo "soak: passed"
