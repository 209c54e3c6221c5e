#!/usr/bin/env bash
# Runs the SCEP-to-CMP bridge on one machine and enrolls a device through it:
#
#   SCEP client --SCEP--> certgate A (RA) --CMP over TCP--> certgate B (CA, softca)
#
#   examples/scep-to-cmp/run.sh [CA_HTTP_PORT CA_TCP_PORT RA_HTTP_PORT]
#
# The client is strongSwan's pki when it is installed (Debian packages strongswan-pki
# and libstrongswan-extra-plugins), else the micromdm scepclient 2.3.0 that
# .ci/peers/go.mod pins. The script checks that the certificate chains to B's root and
# that B knows it: B accepts a revocation of it. Everything listens on 127.0.0.1.
set -euo pipefail
ca_http=${1:-18441}
ca_tcp=${2:-18442}
ra_http=${3:-18443}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

(cd "$repo" && go build -o "$work/certgate" ./gateway/cmd/certgate)
sed -e "s/CA_HTTP_PORT/$ca_http/; s/CA_TCP_PORT/$ca_tcp/g; s/RA_HTTP_PORT/$ra_http/" "$here/ca.yaml" > "$work/ca.yaml"
sed -e "s/CA_HTTP_PORT/$ca_http/; s/CA_TCP_PORT/$ca_tcp/g; s/RA_HTTP_PORT/$ra_http/" "$here/ra.yaml" > "$work/ra.yaml"

start() {
  local name=$1
  (cd "$work" && exec ./certgate serve --config "$name.yaml" >"$name.log" 2>&1) &
  pids+=($!)
  for _ in $(seq 150); do
    grep -q "certgate ready" "$work/$name.log" && return 0
    sleep 0.1
  done
  echo "certgate $name did not start:" >&2
  cat "$work/$name.log" >&2
  exit 1
}
start ca
start ra
echo "certgate B (CA) on 127.0.0.1:$ca_http and :$ca_tcp, certgate A (RA) on 127.0.0.1:$ra_http"

url="http://127.0.0.1:$ra_http/scep"
challenge=$(cat "$work/ra-data/secrets/scep-default.challenge")
cd "$work"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out device.key 2>/dev/null
if command -v pki >/dev/null; then
  echo "client: strongSwan $(pki --version 2>/dev/null | head -1 || echo pki)"
  pki --scepca --url "$url" --caout ca.der --raout ra.der --force >/dev/null
  pki --scep --url "$url" --in device.key --dn "CN=bridged-device,O=certgate example" \
    --password "$challenge" --cacert-enc ra.der --cacert-sig ra.der --outform pem > device.crt
else
  echo "client: micromdm scepclient 2.3.0"
  (cd "$repo" && go build -modfile=.ci/peers/go.mod -o "$work/scepclient" github.com/micromdm/scep/v2/cmd/scepclient)
  ./scepclient -server-url "$url" -private-key device.key -certificate device.crt \
    -challenge "$challenge" -cn bridged-device -organization "certgate example"
fi

openssl verify -CAfile ca-data/softca/root.crt -untrusted ca-data/softca/issuing.crt device.crt
./certgate cmp rr --server "http://127.0.0.1:$ca_http/.well-known/cmp" --ref default \
  --secret-file ca-data/secrets/cmp-default.secret --oldcert device.crt --reason 5
echo "the device enrolled over SCEP; the CMP CA behind the RA issued and then revoked its certificate"
