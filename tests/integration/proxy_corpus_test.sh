#!/usr/bin/env bash
# The request-smuggling corpus (issue #13) end to end: crafted requests and crafted upstream
# responses through a reverse proxy to a recording upstream, judged by what the client got
# back and by the exact bytes that reached the upstream (tests/fakes/smuggle.js; cases in
# tests/fakes/smuggle_cases.js and tests/fakes/recorder_upstream.js).
#
#   bash tests/integration/proxy_corpus_test.sh PORTCULLIS_BINARY SOURCE_DIR
#
# Fronts, each forwarding to a recorder of its own (tests/fakes/recorder_upstream.js):
#   relay       a transparent TCP relay inside the runner: the harness's own check (it
#               forwards every byte, so every case to refuse must be flagged; every plain
#               control must pass). A miss is a harness error and fails the test.
#   nginx       nginx 1.22 (Debian's), proxy_pass with HTTP/1.1 keep-alive to the recorder.
#   haproxy     HAProxy 2.6 (Debian's), mode http, default options.
#   portcullis  the built-in proxy (`listeners.proxy`); a binary whose `check` refuses the
#               configuration fails the test.
# The test fails on any portcullis case that is not PASS and on harness errors; nginx's and
# HAProxy's results are printed as the comparison. Every wait is bounded: a case ends when
# the front closes, when its answers are in, or 300 ms after a refusal stopped the data;
# never later than 8 s. The fronts run at once.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

command -v node >/dev/null || fail "node is not installed (Debian: nodejs)"
command -v nginx >/dev/null || fail "nginx is not installed (Debian: nginx-light)"
command -v haproxy >/dev/null || fail "haproxy is not installed (Debian: haproxy)"
HAPROXY=$(command -v haproxy)
FAKES="$SRC/tests/fakes"
NGINX_VERSION=$(nginx -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p')
HAPROXY_VERSION=$("$HAPROXY" -v 2>&1 | sed -n '1s/^HAProxy version \([^ ]*\).*/\1/p')
log "nginx ${NGINX_VERSION:-?}, HAProxy ${HAPROXY_VERSION:-?}, node $(node --version)"

# The corpus is the issue's: at least 70 crafted requests and the response cases.
n_requests=$(node "$FAKES/smuggle.js" --list | sed -n 's/^[0-9]* cases: \([0-9]*\) requests.*/\1/p')
((n_requests >= 70)) || fail "the corpus has only ${n_requests:-no} request cases"

# ---- one recorder per front ---------------------------------------------------------------
# start_recorder NAME: REC_PORT[NAME], its log in $TEST_TMP/rec-NAME/recorder.jsonl (every byte
# it received; PORTCULLIS_KEEP_TMP=1 keeps it).
declare -A REC_PORT=()
start_recorder() {
  local name=$1 dir="$TEST_TMP/rec-$1"
  start_bg "rec-$name" node "$FAKES/recorder_upstream.js" --port 0 --state-dir "$dir" --exit-with-parent
  wait_for_file "$dir/ready.json" 15 "rec-$name"
  REC_PORT[$name]=$(sed -n 's/.*"port":\([0-9]*\).*/\1/p' "$dir/ready.json")
  [[ ${REC_PORT[$name]} =~ ^[0-9]+$ ]] || fail "recorder $name: no port in $(cat "$dir/ready.json")"
}
for front in relay nginx haproxy; do start_recorder "$front"; done
FRONTS=(--front "relay=relay,$TEST_TMP/rec-relay,transparent relay" --relay-check relay)

# ---- nginx --------------------------------------------------------------------------------
render_nginx() {
  cat >"$TEST_TMP/nginx.conf" <<NGINX
worker_processes 1;
error_log $TEST_TMP/nginx-error.log info;
events { worker_connections 256; }
http {
  access_log $TEST_TMP/nginx-access.log;
  client_body_temp_path $TEST_TMP/ngx_body;
  proxy_temp_path $TEST_TMP/ngx_proxy;
  fastcgi_temp_path $TEST_TMP/ngx_fastcgi;
  uwsgi_temp_path $TEST_TMP/ngx_uwsgi;
  scgi_temp_path $TEST_TMP/ngx_scgi;
  # Bounds for requests nginx waits on (a body it believes is still coming): the case
  # ends with nginx's own 408 instead of the runner's cap.
  client_header_timeout 3s;
  client_body_timeout 3s;
  upstream recorder {
    server 127.0.0.1:${REC_PORT[nginx]};
    keepalive 8;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://recorder;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 5s;
    }
  }
}
NGINX
}
start_nginx nginx render_nginx /c/__ready NGINX_PORT
FRONTS+=(--front "nginx=127.0.0.1:$NGINX_PORT,$TEST_TMP/rec-nginx,nginx ${NGINX_VERSION:-1.22}")
log "nginx on :$NGINX_PORT -> recorder :${REC_PORT[nginx]}"

# ---- HAProxy ------------------------------------------------------------------------------
started=0
for attempt in 1 2 3; do
  free_port HAPROXY_PORT
  cat >"$TEST_TMP/haproxy.cfg" <<HAPROXY
global
  nbthread 1
  maxconn 256
defaults
  mode http
  timeout connect 5s
  timeout client 5s
  timeout server 5s
  timeout http-request 3s
frontend corpus
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend recorder
backend recorder
  server rec 127.0.0.1:${REC_PORT[haproxy]}
HAPROXY
  "$HAPROXY" -c -f "$TEST_TMP/haproxy.cfg" >"$TEST_TMP/haproxy-c.log" 2>&1 ||
    fail "haproxy -c rejected the configuration: $(cat "$TEST_TMP/haproxy-c.log")"
  start_bg haproxy "$HAPROXY" -db -f "$TEST_TMP/haproxy.cfg"
  if haproxy_serving haproxy "http://127.0.0.1:$HAPROXY_PORT/c/__ready"; then
    started=1
    break
  fi
  log "HAProxy: port $HAPROXY_PORT was taken meanwhile (attempt $attempt)"
done
((started)) || fail "HAProxy could not bind a free port in 3 attempts"
FRONTS+=(--front "haproxy=127.0.0.1:$HAPROXY_PORT,$TEST_TMP/rec-haproxy,HAProxy ${HAPROXY_VERSION:-2.6}")
log "HAProxy on :$HAPROXY_PORT -> recorder :${REC_PORT[haproxy]}"

# ---- portcullis, when it has the built-in proxy ---------------------------------------------
# render_portcullis FILE PROXY_PORT RECORDER_PORT: the one configuration the corpus runs
# portcullis with (docs/testing.md shows it).
render_portcullis() {
  cat >"$1" <<YAML
version: 1
workers: 1
listeners:
  proxy: 127.0.0.1:$2
  admin: 127.0.0.1:0
upstreams:
  # The crafted answers are failures on purpose: passive health must not eject the server.
  rec: { servers: [127.0.0.1:$3], passive_health: { max_fails: 0 } }
routes:
  - name: all
    match: { paths: ["/**"] }
    allow: true
    upstream: rec
# A request body that stops short is answered 408 here, within the runner's wait.
proxy: { body_timeout: 2s }
default: deny
audit: { sink: "file:$TEST_TMP/audit.jsonl" }
YAML
}
config="$TEST_TMP/portcullis.yaml"
render_portcullis "$config" 8080 9
MUST_PASS=()
if check_out=$("$PORTCULLIS" check -c "$config" 2>&1); then
  start_recorder portcullis
  started=0
  for attempt in 1 2 3; do
    free_port PROXY_PORT
    render_portcullis "$config" "$PROXY_PORT" "${REC_PORT[portcullis]}"
    ready="$TEST_TMP/portcullis.ready.json"
    rm -f -- "$ready"
    start_bg portcullis "$PORTCULLIS" serve -c "$config" --ready-file "$ready"
    for ((i = 0; i < 300; i++)); do
      [[ -s $ready ]] && break
      pid_alive "${PID_OF[portcullis]}" || break
      sleep 0.05
    done
    if [[ -s $ready ]]; then
      started=1
      break
    fi
    stop_bg portcullis
    grep -qsi "already in use" "$TEST_TMP/portcullis.err" ||
      fail "portcullis did not start with the proxy configuration: $(tail -n 5 "$TEST_TMP/portcullis.err")"
    mv -f "$TEST_TMP/portcullis.err" "$TEST_TMP/portcullis.err.$attempt"
  done
  ((started)) || fail "portcullis could not bind a free proxy port in 3 attempts"
  # Listening once the ready file is written; the first answer through it proves the route.
  code=""
  for ((i = 0; i < 100; i++)); do
    code=$(curl -s --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' \
      "http://127.0.0.1:$PROXY_PORT/c/__ready" 2>/dev/null) || true
    [[ $code == 200 ]] && break
    pid_alive "${PID_OF[portcullis]}" || fail "portcullis exited: $(tail -n 5 "$TEST_TMP/portcullis.err")"
    sleep 0.1
  done
  [[ $code == 200 ]] || fail "GET /c/__ready through the portcullis proxy: HTTP ${code:-none}, expected 200"
  FRONTS+=(--front "portcullis=127.0.0.1:$PROXY_PORT,$TEST_TMP/rec-portcullis,portcullis" --must-pass portcullis)
  MUST_PASS=(portcullis)
  log "portcullis proxy on :$PROXY_PORT -> recorder :${REC_PORT[portcullis]}"
else
  fail "$PORTCULLIS rejects the proxy configuration: $check_out"
fi

# ---- the corpus -----------------------------------------------------------------------------
log "running the corpus through: relay nginx haproxy ${MUST_PASS[*]}"
# PORTCULLIS_CORPUS_ONLY=REGEX runs only the cases whose id matches (docs/testing.md).
[[ -z ${PORTCULLIS_CORPUS_ONLY:-} ]] || FRONTS+=(--only "$PORTCULLIS_CORPUS_ONLY")
rc=0
node "$FAKES/smuggle.js" "${FRONTS[@]}" --json "$TEST_TMP/verdicts.json" >"$TEST_TMP/corpus.txt" \
  2>"$TEST_TMP/corpus.err" || rc=$?
cat "$TEST_TMP/corpus.txt"
if [[ -s $TEST_TMP/corpus.err ]]; then sed "s/^/  runner: /" "$TEST_TMP/corpus.err" >&2; fi
case $rc in
  0) ;;
  1) fail "portcullis did not pass every case of the corpus (see the FAIL and LENIENT lines above)" ;;
  *) fail "the corpus runner reported a harness error (exit $rc)" ;;
esac

# The fronts must still be serving: a crash would have turned refusals into closes.
for name in nginx haproxy "${MUST_PASS[@]}"; do
  pid_alive "${PID_OF[$name]}" || fail "$name exited during the corpus: $(tail -n 5 "$TEST_TMP/$name.err")"
done
if ((${#MUST_PASS[@]} == 0)); then
  log "portcullis was not run (no listeners.proxy yet): only the comparison and the harness check ran"
fi
