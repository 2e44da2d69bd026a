#!/bin/sh
# Writes the benchmark configuration used by `make bench` into DIR: the
# shipped catalog, a realistic policy (roles by network, 20 rules with
# schedules and a quota), the usage log on, one worker (the harness gives the
# proxy one core), CONNECT allowed to the harness's origin ports.
set -eu
dir=$1
repo=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$dir/rules" "$dir/state"
cp "$repo/rules/00-platforms.ini" "$dir/rules/"
{
    printf '[role marketing]\nnetworks = 10.20.0.0/16\n\n'
    printf '[role staff]\nnetworks = 10.0.0.0/8, 127.0.0.0/8\n\n'
    printf '[role guests]\nnetworks = 192.168.0.0/16\n\n'
    printf '[schedule lunch]\nwhen = mon-fri 12:00-13:30\n\n'
    printf '[schedule after-hours]\nwhen = mon-fri 17:30-24:00, sat-sun\n\n'
    printf '[rule marketing-all-day]\nroles = marketing\nplatforms = facebook, instagram, linkedin, x\naction = allow\n\n'
    for p in youtube twitch vimeo dailymotion tiktok reddit pinterest snapchat tumblr quora \
             telegram discord whatsapp signal; do
        printf '[rule guests-%s]\nroles = guests\nplatforms = %s\naction = deny\n\n' "$p" "$p"
    done
    printf '[rule messaging]\ncategories = messaging\naction = monitor\n\n'
    printf '[rule lunch]\nroles = *\ncategories = social, video\nwhen = lunch, after-hours\naction = allow\nquota = 30m/day\n\n'
    printf '[rule video-warn]\ncategories = video\naction = warn\n\n'
    printf '[rule dating]\ncategories = dating\naction = deny\n\n'
    # the harness's clients speak TLS to addresses and raw bytes to its echo server: opaque
    printf '[rule staff-opaque]\nroles = staff\ncategories = opaque\naction = allow\n\n'
    printf '[rule social-otherwise]\ncategories = social\naction = deny\nmessage = Social media is open at lunch.\n'
} > "$dir/rules/10-policy.ini"
cat > "$dir/bench.ini" <<EOF2
[proxy]
listen = 127.0.0.1:18040
clients = 127.0.0.0/8
connect_ports = 443, 18080, 18443
rules = rules
timezone = UTC
workers = 1
state_dir = state

[dns]
hosts_file = none

[limits]
; all benchmark load comes from one address
max_per_client = 100000
max_connections = 100000
block_destinations = none

[log]
access = access.log
EOF2
"$repo/socialgate" -t -c "$dir/bench.ini"
