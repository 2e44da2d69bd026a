#!/bin/sh
# socialgate: make the company CA that signs the HTTPS pages ([tls] ca_cert,
# ca_key in proxy.ini). The README section "HTTPS pages: the company CA"
# shows the same commands one by one and how to push ca.pem to browsers.
#
#   make-ca.sh [-n NAME] [-d DAYS] [-u USER] DIR
#
# writes DIR/ca.key (an ECDSA P-256 key, mode 600) and DIR/ca.pem (the CA
# certificate browsers must trust). -n: the CA's name as browsers show it
# (default "socialgate CA"); -d: how long it is valid, in days (default
# 1825, five years); -u: the user socialgate runs as, who must own ca.key
# (default: socialgate when that user exists, else the user running this).
# An existing ca.key is never overwritten: a new CA must be pushed to every
# browser again.
set -eu

name="socialgate CA"
days=1825
owner=""
usage() {
	echo "usage: $0 [-n NAME] [-d DAYS] [-u USER] DIR" >&2
	exit 2
}
while getopts n:d:u: opt; do
	case $opt in
	n) name=$OPTARG ;;
	d) days=$OPTARG ;;
	u) owner=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -eq 1 ] || usage
dir=$1
case $days in
'' | *[!0-9]*) echo "$0: -d wants a number of days, not '$days'" >&2; exit 2 ;;
esac
if [ -z "$owner" ] && id socialgate >/dev/null 2>&1; then
	owner=socialgate
fi
if [ -e "$dir/ca.key" ]; then
	echo "$0: $dir/ca.key exists; move it away first to make a new CA" >&2
	exit 1
fi
mkdir -p "$dir"

# 1. The private key: ECDSA P-256, never readable by anyone else, not even
#    while it is being written.
(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key")
chmod 600 "$dir/ca.key"

# 2. The CA certificate: self-signed, CA:TRUE, allowed to sign certificates
#    and revocation lists only.
openssl req -x509 -new -key "$dir/ca.key" -sha256 -days "$days" \
	-subj "/CN=$name" \
	-addext basicConstraints=critical,CA:TRUE,pathlen:0 \
	-addext keyUsage=critical,keyCertSign,cRLSign \
	-addext subjectKeyIdentifier=hash \
	-out "$dir/ca.pem"
chmod 644 "$dir/ca.pem"

# 3. Only socialgate's user may read the key (socialgate -t refuses it otherwise).
if [ -n "$owner" ]; then
	chown "$owner" "$dir/ca.key"
fi

echo "$dir/ca.pem: the certificate to push to browsers"
echo "$dir/ca.key: the key, mode 600${owner:+, owned by $owner}"
openssl x509 -in "$dir/ca.pem" -noout -subject -enddate -fingerprint -sha256
