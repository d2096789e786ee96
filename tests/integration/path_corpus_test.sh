#!/usr/bin/env bash
# Differential test of request targets: real nginx in front (auth_request to portcullis,
# X-Original-URI = $request_uri, as in docs/integrations/nginx.md), and an application
# behind it (a second nginx) that records the path it served. Every target of
# tests/integration/data/path_corpus.txt is sent byte for byte, without a token, and must
# end in one of:
#   - refused by portcullis: its audit line says bad_request, the application never saw it;
#   - rejected by nginx itself (400, no auth subrequest, so no audit line);
#   - denied by portcullis on a private route, the application never saw it;
#   - allowed by portcullis on a public route, and the application served the very path
#     portcullis routed (audit `path`, percent-decoded, == the application's `$uri`).
# Never "allowed on one path and served on another". A line may also name the outcome it
# must have (see the corpus' header). A few private paths with a token show the set-up
# forwards what it allows.
#
#   bash tests/integration/path_corpus_test.sh PORTCULLIS_BINARY SOURCE_DIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lib_init "$@"

command -v nginx >/dev/null || fail "nginx is not installed (Debian: nginx-light)"
CORPUS="$SRC/tests/integration/data/path_corpus.txt"
[[ -s $CORPUS ]] || fail "no corpus at $CORPUS"
AUDIT_FILE="$TEST_TMP/audit.jsonl"
APP_LOG="$TEST_TMP/app_access.log"
EDGE_LOG="$TEST_TMP/edge_access.log"
LIB_LOGS+=("$APP_LOG" "$EDGE_LOG")

# ---- portcullis --------------------------------------------------------------------------
config="$TEST_TMP/portcullis.yaml"
cat >"$config" <<YAML
version: 1
workers: 1
listeners: { authz: 127.0.0.1:0, admin: 127.0.0.1:0 }
authz: { style: nginx, trusted_proxies: [127.0.0.1/32] }
identity:
  demo:
    issuer: portcullis-dev
    jwks_file: $SRC/examples/keys/demo-jwks.json
    audiences: [orders-api]
    algorithms: [RS256, ES256]
routes:
  - name: public
    match: { paths: [/public/**] }
    allow: true
  - name: matrix
    match: { paths: [/matrix/**] }
    allow: true
    path_params: allow
  - name: private
    match: { paths: [/**] }
    authenticate: [demo]
default: deny
audit: { sink: "file:$AUDIT_FILE" }
YAML
start_portcullis portcullis "$config"
AUTHZ_PORT=${AUTHZ##*:}
wait_http "http://$ADMIN/readyz" 30 portcullis

# ---- nginx: the edge (auth_request) and the application, in one process -------------------
render_nginx() {
  cat >"$TEST_TMP/nginx.conf" <<NGINX
worker_processes 1;
error_log $TEST_TMP/nginx-error.log info;
events { worker_connections 256; }
http {
  client_body_temp_path $TEST_TMP/ngx_body;
  proxy_temp_path $TEST_TMP/ngx_proxy;
  fastcgi_temp_path $TEST_TMP/ngx_fastcgi;
  uwsgi_temp_path $TEST_TMP/ngx_uwsgi;
  scgi_temp_path $TEST_TMP/ngx_scgi;
  log_format edge 'rid=\$request_id status=\$status uri=\$uri';
  log_format app 'rid=\$http_x_request_id uri=\$uri';
  server {
    listen 127.0.0.1:$LISTEN_PORT;
    access_log $EDGE_LOG edge;
    location / {
      auth_request /_portcullis;
      add_header X-Request-Id \$request_id always;
      # No URI part: the application gets the target as the client sent it (what a
      # servlet container or any other upstream would parse itself).
      proxy_pass http://127.0.0.1:$UPSTREAM_PORT;
      proxy_set_header X-Request-Id \$request_id;
    }
    location = /_portcullis {
      internal;
      proxy_pass http://127.0.0.1:$AUTHZ_PORT;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI \$request_uri;
      proxy_set_header X-Original-Method \$request_method;
      proxy_set_header X-Original-Host \$host;
      proxy_set_header X-Request-Id \$request_id;
      proxy_connect_timeout 2s;
      proxy_read_timeout 5s;
    }
  }
  server {
    listen 127.0.0.1:$UPSTREAM_PORT;
    access_log $APP_LOG app;
    location / {
      default_type text/plain;
      return 200 "uri=\$uri\n";
    }
  }
}
NGINX
}
start_nginx nginx render_nginx /public/probe LISTEN_PORT UPSTREAM_PORT
log "nginx: edge on :$LISTEN_PORT, application on :$UPSTREAM_PORT, portcullis on :$AUTHZ_PORT"

# raw_get TARGET [HEADER_LINE]: sends "GET TARGET HTTP/1.1" byte for byte over bash's
# /dev/tcp (curl would rewrite some targets); RAW_STATUS and RAW_RID (X-Request-Id, empty
# when nginx answered before any location ran) from the response. Bounded by `read -t`.
raw_get() {
  local target=$1 extra=${2:-} out
  out=$(
    trap '' PIPE
    exec 3<>"/dev/tcp/127.0.0.1/$LISTEN_PORT" || exit 0
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n' \
      "$target" "$extra" >&3 2>/dev/null
    status="" rid="" line=""
    IFS= read -r -t 5 line <&3 && status=${line#* } && status=${status%% *}
    while IFS= read -r -t 5 line <&3; do
      line=${line%$'\r'}
      [[ -z $line ]] && break
      [[ ${line,,} == x-request-id:* ]] && rid=${line#*: }
    done
    printf '%s %s' "${status:-000}" "$rid"
  )
  RAW_STATUS=${out%% *}
  RAW_RID=${out#* }
  [[ $RAW_RID == "$RAW_STATUS" ]] && RAW_RID=""
  return 0
}

# decode_percent TEXT: the bytes that %HH escapes stand for (the audit path is normalised
# with escapes; nginx logs raw bytes). Prints with printf -v into DECODED.
decode_percent() {
  printf -v DECODED '%b' "${1//%/\\x}"
}
# decode_nginx_log TEXT: nginx's access log writes '"', '\' and bytes outside 0x20..0x7e
# as \xHH.
decode_nginx_log() {
  printf -v DECODED '%b' "$1"
}

# field LINE KEY: a string field of a flat one-line JSON audit line, into FIELD (a bash
# regex, no subshell: pass 2 reads hundreds of fields).
field() {
  local re="\"$2\":\"([^\"]*)\""
  FIELD=""
  [[ $1 =~ $re ]] && FIELD=${BASH_REMATCH[1]}
  return 0
}

# app_uri RID: the $uri the application served for request RID, or "" (bounded wait).
app_uri() {
  local rid=$1 i line
  for ((i = 0; i < ${2:-40}; i++)); do
    line=$(grep -F "rid=$rid " "$APP_LOG" 2>/dev/null | head -n 1) || true
    if [[ -n $line ]]; then
      APP_URI=${line#*uri=}
      return 0
    fi
    sleep 0.05
  done
  APP_URI=""
  return 1
}

# ---- the set-up forwards what it allows: private paths with a token ------------------------
TOKEN=$(mint_token --sub alice --aud orders-api)
for target in /orders/7 /orders/a%20b/ /ORDERS/x /matrix/../orders/9; do
  raw_get "$target" "Authorization: Bearer $TOKEN"$'\r\n'
  assert_eq 200 "$RAW_STATUS" "$target with a token"
  wait_audit "\"request_id\":\"$RAW_RID\""
  assert_audit decision allow "$target with a token"
  assert_audit route private "$target with a token"
  app_uri "$RAW_RID" || fail "$target with a token: the application has no record of $RAW_RID"
  decode_percent "$(json_get "$AUDIT_LINE" path)"
  want=$DECODED
  decode_nginx_log "$APP_URI"
  assert_eq "$want" "$DECODED" "$target with a token: path served vs path routed"
done
log "with a token: 4 private targets allowed and served on the path portcullis routed"

# ---- the corpus, without a token ---------------------------------------------------------
# Pass 1 sends every target; pass 2 reads the audit and the application's log once.
declare -a targets=() expects=() statuses=() rids=()
n_with_rid=0
audit_before=$(grep -c . "$AUDIT_FILE" || true)
while IFS= read -r entry || [[ -n $entry ]]; do
  [[ -z $entry || $entry == '#'* ]] && continue
  target=${entry%%$'\t'*}
  expect=""
  [[ $entry == *$'\t'* ]] && expect=${entry#*$'\t'}
  raw_get "$target"
  targets+=("$target")
  expects+=("$expect")
  statuses+=("$RAW_STATUS")
  rids+=("$RAW_RID")
  [[ -n $RAW_RID ]] && n_with_rid=$((n_with_rid + 1))
done <"$CORPUS"
n_total=${#targets[@]}
log "sent $n_total targets; $n_with_rid reached a location (have a request id)"

# One audit line per request that got a request id, and no more: nginx's own rejections
# never reach portcullis. The audit is written asynchronously: wait (bounded), then settle.
for ((i = 0; i < 200; i++)); do
  audit_now=$(grep -c . "$AUDIT_FILE" || true)
  ((audit_now - audit_before >= n_with_rid)) && break
  sleep 0.05
done
sleep 0.3
mismatches=() wrong=()
audit_now=$(grep -c . "$AUDIT_FILE" || true)
((audit_now - audit_before == n_with_rid)) ||
  mismatches+=("$((audit_now - audit_before)) audit lines for $n_with_rid requests that reached portcullis")

declare -A audit_of=() app_uri_of=()
while IFS= read -r line; do
  field "$line" request_id
  [[ -n $FIELD ]] && audit_of[$FIELD]=$line
done <"$AUDIT_FILE"
while IFS= read -r line; do
  rid=${line#rid=}
  rid=${rid%% *}
  app_uri_of[$rid]=${line#*uri=}
done <"$APP_LOG"

n_refused=0 n_nginx=0 n_denied=0 n_same=0
for ((k = 0; k < n_total; k++)); do
  target=${targets[k]} expect=${expects[k]} status=${statuses[k]} rid=${rids[k]}
  printf -v shown '%q' "$target"
  reason=""
  if [[ -z $rid ]]; then
    # nginx answered before any location ran: no subrequest, no upstream.
    if [[ $status != 400 ]]; then
      mismatches+=("$shown: HTTP $status without a request id (expected nginx's own 400)")
      continue
    fi
    outcome=nginx
    n_nginx=$((n_nginx + 1))
  else
    line=${audit_of[$rid]:-}
    if [[ -z $line ]]; then
      mismatches+=("$shown: HTTP $status, request $rid, but no audit line")
      continue
    fi
    field "$line" decision && decision=$FIELD
    field "$line" reason && reason=$FIELD
    field "$line" route && route=$FIELD
    served=${app_uri_of[$rid]-<none>}
    if [[ $decision == allow ]]; then
      outcome=allow
      if [[ $route != public && $route != matrix ]]; then
        mismatches+=("$shown: allowed without a token on route '$route'")
        continue
      fi
      if [[ $served == "<none>" ]]; then
        mismatches+=("$shown: allowed (HTTP $status) but the application has no record")
        continue
      fi
      field "$line" path
      decode_percent "$FIELD"
      routed=$DECODED
      decode_nginx_log "$served"
      if [[ $routed != "$DECODED" ]]; then
        mismatches+=("$shown: routed as $(printf '%q' "$routed") ($route), served as $(printf '%q' "$DECODED")")
        continue
      fi
      n_same=$((n_same + 1))
    else
      if [[ $served != "<none>" ]]; then
        mismatches+=("$shown: denied ($reason) but the application served $served")
        continue
      fi
      if [[ $reason == bad_request ]]; then
        outcome=refuse
        n_refused=$((n_refused + 1))
      else
        outcome=deny
        n_denied=$((n_denied + 1))
      fi
    fi
  fi
  if [[ -n $expect && $expect != "$outcome" ]]; then
    wrong+=("$shown: $outcome (HTTP $status${reason:+, $reason}), the corpus expects $expect")
  fi
done

log "corpus: $n_total targets: $n_refused refused by portcullis, $n_nginx rejected by nginx," \
  "$n_denied denied (token required), $n_same allowed & same path, ${#mismatches[@]} mismatches"
if ((${#wrong[@]} > 0)); then
  printf '  unexpected: %s\n' "${wrong[@]}" >&2
fi
if ((${#mismatches[@]} > 0)); then
  printf '  MISMATCH: %s\n' "${mismatches[@]}" >&2
  fail "${#mismatches[@]} targets were decided on one path and served on another (see above)"
fi
((${#wrong[@]} == 0)) || fail "${#wrong[@]} targets did not have the outcome the corpus expects"
((n_total >= 100)) || fail "the corpus has only $n_total targets"
log "PASS"
