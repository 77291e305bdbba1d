#!/usr/bin/env bash
# Side-by-side benchmark, loopback only: nginx proxy_pass (upstream keep-alive) vs a release build of sensgate,
# both as operators run them (nginx with its buffered access log on, sensgate at its default log level, its JSON
# access log going to a file), in front of the same nginx upstream that serves the seed SMS and Brand Message JSON on the SENS paths (so the
# upstream is never the bottleneck). wrk drives each in turn with the same connections and duration.
#   scripts/bench.sh [seconds] [connections] [rounds]      default 10 s, 64 connections, 3 rounds
# Prints requests/s, p50/p99, CPU per request, sensgate's RSS idle and after load, and the ratios sensgate ÷ nginx;
# extra rows run both with access logs off, for what the logs cost;
# and, for scale, what libcurl alone costs per request (scripts/curl-floor.c: a C client with one multi handle) and what
# a bare swift-nio HTTP/1 server does with one fixed answer (Sources/NIOFloor): the floors under the two halves of the path.
# Also, as production reaches SENS: both proxies again in front of the upstream over TLS (certificates verified;
# nginx proxies HTTP/1.1 over TLS, sensgate speaks HTTP/2 where ALPN offers it), with a throwaway CA made here.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${1:-10}"
connections="${2:-64}"
rounds="${3:-3}"
export PATH="/opt/swift/usr/bin:$PATH"
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
command -v cc >/dev/null || need+=(gcc)
if ((${#need[@]})); then sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq "${need[@]}" >/dev/null; fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# Built as the container image builds it (static Swift standard library), in its own build folder
# (SENSGATE_BENCH_SCRATCH names another, e.g. one shared by two checkouts compared in turn).
scratch="${SENSGATE_BENCH_SCRATCH:-.build-static}"
build=(swift build -c release --product sensgate --static-swift-stdlib --scratch-path "$scratch")
"${build[@]}" > /tmp/sensgate-bench-build.log 2>&1 || { cat /tmp/sensgate-bench-build.log; exit 1; }
bin="$("${build[@]}" --show-bin-path)/sensgate"
# For scale: a bare swift-nio HTTP/1 server with one fixed answer (Sources/NIOFloor), the floor under the gateway's own work.
swift build -c release --product nio-floor --static-swift-stdlib --scratch-path "$scratch" >> /tmp/sensgate-bench-build.log 2>&1 \
  || { cat /tmp/sensgate-bench-build.log; exit 1; }
floor_bin="$(dirname "$bin")/nio-floor"

work=$(mktemp -d /tmp/sensgate-bench.XXXX)
chmod 755 "$work"  # nginx's workers run as an unprivileged user
# Below the kernel's ephemeral range (32768–60999), where an outgoing connection may hold any port, and below the
# tests' ports (20000–32000).
base=$((12000 + RANDOM % 8000))
up=$base; proxy=$((base + 1)); gw=$((base + 2)); uptls=$((base + 4)); proxytls=$((base + 5)); gwtls=$((base + 6))
proxyquiet=$((base + 7)); gwquiet=$((base + 8)); niofloor=$((base + 9))
sms_id="ncp:sms:kr:500000000001:sens"; bm_id="ncp:kkobizmsg:kr:270000000006:sens"
sms_msg="f574d3f0-****-****-****-daa31f50eaf5"; bm_msg="bc87c708-****-****-****-57b56c506309"
python3 - "$work" <<'PY'
import sys, re
work = sys.argv[1]
def example(path, end):
    text = open(path).read()
    part = text[text.index('Response example'):]
    part = part[:part.index(end)]
    return part[part.index('{'):part.rindex('}') + 1]
import json
for name, path in [('sms', '../shared/seeds/000_2f5628a966089cec.txt'), ('bm', '../shared/seeds/004_7a671ef196cad4df.txt')]:
    try:
        body = example(path, 'Reception result code')
    except (OSError, ValueError):
        body = None
    if body is None:
        sys.exit("seed documents not found beside the repository (../shared/seeds)")
    open(f"{work}/{name}.json", "w").write(json.dumps(json.loads(body), ensure_ascii=False))
PY
# A throwaway CA and a certificate for the TLS upstream (localhost and 127.0.0.1), verified by both proxies.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=sensgate bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
  -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/tls.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/tls.ext" -out "$work/tls.pem" 2>/dev/null
chmod 644 "$work"/*.pem "$work"/*.key
cat > "$work/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 4096; }
http {
    # As operators run it: the combined access log, buffered.
    access_log $work/nginx-access.log combined buffer=64k flush=1s;
    keepalive_requests 1000000;
    upstream sens { server 127.0.0.1:$up; keepalive 128; }
    upstream sens_tls { server 127.0.0.1:$uptls; keepalive 128; }
    server {
        # The upstream, plain and over TLS (HTTP/2 offered by ALPN).
        listen 127.0.0.1:$up;
        listen 127.0.0.1:$uptls ssl http2;
        ssl_certificate $work/tls.pem;
        ssl_certificate_key $work/tls.key;
        root $work;
        access_log off;
        # Every path under a prefix answers with that channel's seed JSON.
        location /sms/v2/ { default_type application/json; try_files /sms.json =404; }
        location /brandmessage/v2/ { default_type application/json; try_files /bm.json =404; }
    }
    server {
        listen 127.0.0.1:$proxy;
        location / {
            proxy_pass http://sens;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        # The same proxy with its access log off (extra rows).
        listen 127.0.0.1:$proxyquiet;
        access_log off;
        location / {
            proxy_pass http://sens;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
    server {
        # nginx to the TLS upstream, verifying its certificate.
        listen 127.0.0.1:$proxytls;
        location / {
            proxy_pass https://sens_tls;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_ssl_verify on;
            proxy_ssl_trusted_certificate $work/ca.pem;
            proxy_ssl_name localhost;
            proxy_ssl_session_reuse on;
        }
    }
}
NGINX
"$NGINX" -c "$work/nginx.conf" -e "$work/error.log"
export NCP_ACCESS_KEY=BENCHACCESSKEY NCP_SECRET_KEY=bench-secret
# As shipped: the default log level (info), one JSON access-log line per request, written to a file.
"$bin" serve --listen "127.0.0.1:$gw" --upstream "http://127.0.0.1:$up" \
  --sms-service-id "$sms_id" --brandmessage-service-id "$bm_id" >"$work/sensgate-access.log" 2>"$work/sensgate.err" &
gw_pid=$!
# A second gateway with the result cache off: every /v1 lookup is a signed upstream call plus normalization.
nocache=$((base + 3))
SENSGATE_CACHE_TTL=0 "$bin" serve --listen "127.0.0.1:$nocache" --upstream "http://127.0.0.1:$up" \
  --sms-service-id "$sms_id" --brandmessage-service-id "$bm_id" >"$work/sensgate-nocache.log" 2>>"$work/sensgate.err" &
nocache_pid=$!
"$bin" serve --listen "127.0.0.1:$gwtls" --upstream "https://127.0.0.1:$uptls" \
  --upstream-ca-file "$work/ca.pem" --sms-service-id "$sms_id" --brandmessage-service-id "$bm_id" >"$work/sensgate-tls.log" 2>>"$work/sensgate.err" &
tls_pid=$!
# Extra rows: the access log off (level warning), against nginx with its access log off.
SENSGATE_LOG_LEVEL=warning "$bin" serve --listen "127.0.0.1:$gwquiet" --upstream "http://127.0.0.1:$up" \
  --sms-service-id "$sms_id" --brandmessage-service-id "$bm_id" >/dev/null 2>>"$work/sensgate.err" &
quiet_pid=$!
"$floor_bin" "$niofloor" &
floor_pid=$!
cleanup() { kill "$gw_pid" "$nocache_pid" "$tls_pid" "$quiet_pid" "$floor_pid" 2>/dev/null || true; "$NGINX" -c "$work/nginx.conf" -e "$work/error.log" -s stop 2>/dev/null || true; }
trap cleanup EXIT
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$niofloor/" && break; sleep 0.1; done
for port in "$gw" "$nocache" "$gwtls" "$gwquiet"; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
done
rss() { awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status"; }
idle=$(rss)

# Sanity: every target answers 200 before it is measured.
sms_path="/sms/v2/services/$sms_id/messages/$sms_msg"
for url in "http://127.0.0.1:$up$sms_path" "http://127.0.0.1:$proxy$sms_path" "http://127.0.0.1:$gw$sms_path" \
           "http://127.0.0.1:$gw/v1/results/sms/$sms_msg" "http://127.0.0.1:$gw/v1/results/brandmessage/$bm_msg" \
           "http://127.0.0.1:$proxytls$sms_path" "http://127.0.0.1:$gwtls$sms_path" \
           "http://127.0.0.1:$proxyquiet$sms_path" "http://127.0.0.1:$gwquiet$sms_path"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url"); [ "$code" = 200 ] || { echo "bench: $url answered $code"; exit 1; }
done

ticks() { local total=0 pid; for pid in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat"))); done; echo "$total"; }
clk_tck=$(getconf CLK_TCK)
nginx_workers=$(pgrep -P "$(cat "$work/nginx.pid")" | tr '\n' ' ')
measure() {  # url tag pids… → sets rps_<tag>, cpu_<tag>, p50_<tag>, p99_<tag> to this run's figures when it beats the tag's best so far
  local url=$1 tag=$2 out="$work/$2.txt" rps p50 p99 before after requests cpu best
  shift 2
  before=$(ticks "$@")
  wrk -t1 -c"$connections" -d"${duration}s" --latency "$url" > "$out"
  after=$(ticks "$@")
  rps=$(awk '/Requests\/sec/ {print $2}' "$out")
  p50=$(awk '$1=="50%" {print $2}' "$out"); p99=$(awk '$1=="99%" {print $2}' "$out")
  requests=$(awk '/requests in/ {print $1}' "$out")
  # CPU of the processes under test (user + system) over the run, per request served.
  cpu=$(awk -v t=$((after - before)) -v hz="$clk_tck" -v n="$requests" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
  if grep -qE 'Non-2xx|Socket errors' "$out"; then echo "bench: errors in $tag:"; grep -E 'Non-2xx|Socket errors' "$out"; fi
  eval "best=\${rps_$tag:-0}"
  if awk -v a="$rps" -v b="$best" 'BEGIN {exit !(a > b)}'; then eval "rps_$tag=$rps cpu_$tag=$cpu p50_$tag=$p50 p99_$tag=$p99"; fi
}
row() {  # label tag → prints the tag's figures
  local rps cpu p50 p99
  eval "rps=\$rps_$2 cpu=\$cpu_$2 p50=\$p50_$2 p99=\$p99_$2"
  printf '%-34s %12s %10s %10s %9s\n' "$1" "$rps" "$p50" "$p99" "$cpu"
}
run() {  # label url tag pids… → one run, printed
  local label=$1
  shift
  measure "$@"
  row "$label" "$2"
}

printf '%-34s %12s %10s %10s %9s\n' "target ($connections connections, ${duration}s, headline: best of $rounds)" "requests/s" "p50" "p99" "CPU µs/req"
# The headline rows run in interleaved rounds and each keeps its best round: a shared VM's neighbours only ever slow
# a run down, and interleaving gives nginx and sensgate the same moments of the machine.
for _ in $(seq "$rounds"); do
  measure "http://127.0.0.1:$up$sms_path" direct $nginx_workers
  measure "http://127.0.0.1:$proxy$sms_path" nginx $nginx_workers
  measure "http://127.0.0.1:$gw$sms_path" pass "$gw_pid"
  measure "http://127.0.0.1:$gw/v1/results/sms/$sms_msg" v1sms "$gw_pid"
  measure "http://127.0.0.1:$gw/v1/results/brandmessage/$bm_msg" v1bm "$gw_pid"
  measure "http://127.0.0.1:$nocache/v1/results/sms/$sms_msg" v1nocache "$nocache_pid"
  measure "http://127.0.0.1:$niofloor/" niofloor "$floor_pid"
done
row "upstream direct (nginx static)" direct
row "nginx proxy_pass" nginx
row "sensgate passthrough" pass
row "sensgate /v1 sms" v1sms
row "sensgate /v1 brandmessage" v1bm
row "sensgate /v1 sms, cache off" v1nocache
row "bare swift-nio, fixed answer" niofloor
after=$(rss)
run "nginx proxy_pass, log off" "http://127.0.0.1:$proxyquiet$sms_path" nginxquiet $nginx_workers
run "sensgate passthrough, log off" "http://127.0.0.1:$gwquiet$sms_path" passquiet "$quiet_pid"
run "sensgate /v1 sms, log off" "http://127.0.0.1:$gwquiet/v1/results/sms/$sms_msg" v1quiet "$quiet_pid"
run "nginx proxy_pass, TLS upstream" "http://127.0.0.1:$proxytls$sms_path" nginxtls $nginx_workers
run "sensgate passthrough, TLS upstream" "http://127.0.0.1:$gwtls$sms_path" passtls "$tls_pid"
# For scale: libcurl alone, as a C client with one multi handle and as many requests in flight as wrk keeps.
floor=""
if command -v cc >/dev/null && cc -O2 scripts/curl-floor.c -o "$work/curl-floor" -lcurl 2>/dev/null; then
  floor=$("$work/curl-floor" "http://127.0.0.1:$up$sms_path" "$connections" "$duration") || floor=""
  [ -n "$floor" ] && printf '%-34s %12s %10s %10s %9s\n' "libcurl alone (C, one multi handle)" "${floor% *}" "" "" "${floor#* }"
fi
echo
echo "sensgate RSS: idle ${idle} kB, after load ${after} kB"
echo "access-log lines written: sensgate $(wc -l < "$work/sensgate-access.log"), nginx $(cat "$work/nginx-access.log" 2>/dev/null | wc -l) (headline rows: logs on, both sides)"
# The proxy rows' nginx CPU includes the upstream's work; the direct row is that work alone.
awk -v p="$cpu_nginx" -v d="$cpu_direct" -v s="$cpu_pass" -v f="${floor#* }" 'BEGIN {
  printf "CPU per passthrough request: nginx proxy role %.1f µs (proxy row − direct row), sensgate %.1f µs", p - d, s
  if (f != "") printf ", libcurl alone %.1f µs", f
  printf "\n" }'
awk -v p="$rps_pass" -v s="$rps_v1sms" -v b="$rps_v1bm" -v c="$rps_v1nocache" -v n="$rps_nginx" \
    -v f="$rps_niofloor" -v pt="$rps_passtls" -v nt="$rps_nginxtls" -v nq="$rps_nginxquiet" -v pq="$rps_passquiet" -v vq="$rps_v1quiet" 'BEGIN {
  printf "ratio passthrough / nginx:             %.2f\n", p / n
  printf "ratio /v1 sms / nginx:                %.2f\n", s / n
  printf "ratio /v1 brandmessage / nginx:       %.2f\n", b / n
  printf "ratio /v1 sms, cache off / nginx:     %.2f\n", c / n
  printf "ratio bare swift-nio / nginx:         %.2f (the most any swift-nio server reaches here)\n", f / n
  printf "ratio passthrough / nginx, TLS upstream: %.2f\n", pt / nt
  printf "logs off both sides: passthrough %.2f, /v1 sms %.2f\n", pq / nq, vq / nq }'
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
