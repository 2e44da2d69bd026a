#!/bin/sh
# `make bench-tls-pages`: HTTPS deny pages per second, a new TCP connection
# and a new TLS session (no resumption) for each, next to nginx serving a
# page of the same size over TLS, on this machine; and what minting a
# certificate for a new name costs.
#
# A throwaway ECDSA P-256 CA is made with the openssl command. socialgate
# signs its pages' certificates with it ([tls] ca_cert, ca_key); nginx serves
# an ECDSA P-256 leaf signed by it for the same name, and as its page the
# bytes of socialgate's deny page (fetched once with curl). Both write an
# access log line per page, buffered and flushed every second (socialgate's
# usage log, nginx's access_log with buffer= flush=); neither gives session
# tickets. Each side runs with one worker (socialgate `workers = 1`, nginx
# `worker_processes 1`), then with two. tls_pages loads each for SECONDS
# with THREADS connections at a time:
#   nginx                  GET / straight to nginx, 200
#   socialgate same name   CONNECT www.facebook.com:443, 403 inside TLS: the
#                          worker's certificate is cached, every page a hit
#   socialgate new names   CONNECT n0.facebook.com, n1.facebook.com, ...:
#                          every page mints a certificate
# The minted and cache-hit counts are the differences of socialgate's
# /metrics over each run. minting_ms_per_new_name = 1/rate_new -
# 1/rate_same, in ms: with one worker, that worker's time per new name.
# The client shares the machine's cores (the load average before each
# round is printed): compare the ratios, not the rates.
#
# usage: bench_tls_pages.sh SOCIALGATE TLS_PAGES [SECONDS [THREADS]]
# TLS_PAGES_WORKERS (default "1 2"): the worker counts to run, in order.
set -eu
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
client=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
secs=${3:-8}
threads=${4:-4}
repo=$(cd "$(dirname "$0")/../.." && pwd)
nginx=${NGINX:-/usr/sbin/nginx}
name=www.facebook.com

dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-tls-pages.XXXXXX")
pids=""
failed=0

# stop PID: TERM, then KILL if it is still there after 5 s.
stop() {
    kill "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    for p in $pids; do stop "$p"; done
    pids=""
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_up PID URL|PORT: until the port accepts (10 s at most) and PID lives.
wait_up() {
    i=0
    while [ $i -lt 100 ]; do
        kill -0 "$1" 2>/dev/null || return 1
        if /usr/bin/python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$2" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
        i=$((i + 1))
    done
    return 1
}
metric() { # metric PORT NAME
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# --- the CA and nginx's leaf --------------------------------------------------
cd "$dir"
mkdir -p rules state www ngx
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout ca.key -out ca.pem -days 2 -subj "/CN=socialgate bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
chmod 600 ca.key
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout leaf.key -out leaf.csr -subj "/CN=$name" 2>/dev/null
printf 'subjectAltName = DNS:%s\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth\n' \
    "$name" >leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile leaf.ext -out leaf.pem 2>/dev/null

# --- socialgate: deny the social category --------------------------------------
cp "$repo/rules/00-platforms.ini" rules/
printf '[rule social]\ncategories = social\naction = deny\nmessage = Social media is closed.\n' \
    >rules/10-policy.ini
# Denied tunnels are never resolved nor connected; the names map to loopback anyway.
printf '127.0.0.1 %s\n' "$name" >hosts

# start_socialgate WORKERS: sets sg_pid, sg_port, admin_port
start_socialgate() {
    sg_port=$(free_port)
    admin_port=$(free_port)
    cat >socialgate.ini <<EOF
[proxy]
listen = 127.0.0.1:$sg_port
clients = 127.0.0.0/8
connect_ports = 443
rules = $dir/rules
timezone = UTC
workers = $1
state_dir = $dir/state

[dns]
hosts_file = $dir/hosts

[limits]
; all the load comes from one address
max_per_client = 100000
max_connections = 100000
block_destinations = none

[log]
access = $dir/access.log

[tls]
ca_cert = $dir/ca.pem
ca_key = $dir/ca.key

[admin]
listen = 127.0.0.1:$admin_port
EOF
    "$bin" -t -c socialgate.ini >/dev/null
    "$bin" -c socialgate.ini 2>socialgate.stderr &
    sg_pid=$!
    pids="$pids $sg_pid"
    if ! wait_up "$sg_pid" "$sg_port" || ! wait_up "$sg_pid" "$admin_port"; then
        echo "bench_tls_pages: socialgate did not start:" >&2
        tail -n 20 socialgate.stderr >&2
        exit 1
    fi
}

# start_nginx WORKERS: sets ngx_pid, ngx_port
start_nginx() {
    ngx_port=$(free_port)
    user=
    [ "$(id -u)" -eq 0 ] && user="user $(id -un) $(id -gn);"
    cat >ngx/nginx.conf <<EOF
daemon off;
master_process on;
worker_processes $1;
$user
pid $dir/ngx/nginx.pid;
error_log $dir/ngx/error.log warn;
events { worker_connections 4096; }
http {
    access_log $dir/ngx/access.log combined buffer=64k flush=1s;
    client_body_temp_path $dir/ngx;
    proxy_temp_path $dir/ngx;
    fastcgi_temp_path $dir/ngx;
    uwsgi_temp_path $dir/ngx;
    scgi_temp_path $dir/ngx;
    default_type text/html;
    ssl_session_tickets off;
    ssl_session_cache off;
    server {
        listen 127.0.0.1:$ngx_port ssl;
        server_name $name;
        ssl_certificate $dir/leaf.pem;
        ssl_certificate_key $dir/leaf.key;
        root $dir/www;
    }
}
EOF
    "$nginx" -e "$dir/ngx/error.log" -p "$dir/ngx/" -c "$dir/ngx/nginx.conf" \
        >ngx/stdout.log 2>&1 </dev/null &
    ngx_pid=$!
    pids="$pids $ngx_pid"
    if ! wait_up "$ngx_pid" "$ngx_port"; then
        echo "bench_tls_pages: nginx did not start:" >&2
        tail -n 20 ngx/error.log ngx/stdout.log >&2 2>/dev/null
        exit 1
    fi
}

# load LABEL ARGS...: one tls_pages run; sets rate
load() {
    label=$1
    shift
    set +e
    out=$(timeout $((secs + 30)) "$client" --cafile ca.pem --threads "$threads" \
        --seconds "$secs" "$@" 2>client.stderr)
    rc=$?
    set -e
    rate=$(echo "$out" | sed -n 's/.*pages_per_s=\([0-9.]*\).*/\1/p')
    printf '%-22s %s\n' "$label" "${out:-no result}"
    if [ $rc -ne 0 ] || [ -z "$rate" ]; then
        sed 's/^/    /' client.stderr
        failed=1
        rate=0
    fi
}

# sg_load LABEL ARGS...: load through socialgate with the /metrics differences
sg_load() {
    m0=$(metric "$admin_port" socialgate_tls_certificates_minted_total)
    h0=$(metric "$admin_port" socialgate_tls_certificate_cache_hits_total)
    load "$@"
    m1=$(metric "$admin_port" socialgate_tls_certificates_minted_total)
    h1=$(metric "$admin_port" socialgate_tls_certificate_cache_hits_total)
    awk -v m0="${m0:-0}" -v m1="${m1:-0}" -v h0="${h0:-0}" -v h1="${h1:-0}" 'BEGIN {
        m = m1 - m0; h = h1 - h0
        printf "%-22s socialgate_tls_certificates_minted_total+=%d socialgate_tls_certificate_cache_hits_total+=%d cache_hit_rate=%.4f\n",
            "", m, h, (m + h) ? h / (m + h) : 0 }'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }

page_bytes=
for workers in ${TLS_PAGES_WORKERS:-1 2}; do
    start_socialgate "$workers"
    if [ -z "$page_bytes" ]; then
        # nginx's page: the bytes of socialgate's deny page
        code=$(curl -s --max-time 10 -x "http://127.0.0.1:$sg_port" --cacert ca.pem \
            -o www/index.html -w '%{http_code}' "https://$name/")
        if [ "$code" != 403 ]; then
            echo "bench_tls_pages: the deny page through socialgate answered $code, not 403" >&2
            exit 1
        fi
        page_bytes=$(wc -c <www/index.html)
        echo "deny page body: $page_bytes bytes (nginx serves the same bytes as its index.html)"
        echo "access logs on, buffered, flushed every second (socialgate's usage log, nginx's access_log)"
    fi
    start_nginx "$workers"
    echo "== workers = $workers (nginx worker_processes $workers), $threads client threads, $secs s a run, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    load "nginx" --connect "127.0.0.1:$ngx_port" --name "$name"
    r_ngx=$rate
    sg_load "socialgate same name" --proxy "127.0.0.1:$sg_port" --name "$name"
    r_hit=$rate
    sg_load "socialgate new names" --proxy "127.0.0.1:$sg_port" --name n.facebook.com --names 0
    r_new=$rate
    echo "https_deny_pages_vs_nginx=$(ratio "$r_hit" "$r_ngx")"
    echo "https_deny_pages_fresh_names_vs_nginx=$(ratio "$r_new" "$r_ngx")"
    awk -v n="$r_new" -v h="$r_hit" 'BEGIN {
        if (n > 0 && h > 0) printf "minting_ms_per_new_name=%.3f\n", 1000 / n - 1000 / h
        else print "minting_ms_per_new_name=n/a" }'
    stop "$sg_pid"
    stop "$ngx_pid"
    pids=""
done
exit $failed
