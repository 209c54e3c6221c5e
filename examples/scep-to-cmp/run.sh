#!/usr/bin/env bash
# Runs the SCEP-to-CMP bridge on one machine and enrolls a device through it:
#
#   SCEP client --SCEP--> certgate A (RA) --CMP over TCP--> certgate B (CA, softca)
#
#   examples/scep-to-cmp/run.sh [CA_HTTP_PORT CA_TCP_PORT RA_HTTP_PORT]
#
# CLIENT selects the SCEP client: strongswan (pki, Debian packages strongswan-pki and
# libstrongswan-extra-plugins), micromdm-2.1 (scepclient, Debian package scep),
# micromdm-2.3 (the scepclient that .ci/peers/go.mod pins) or certmonger (Debian
# packages certmonger and dbus-daemon; renewal is a new PKCSReq for the same key). The default is strongswan
# when pki is installed, else micromdm-2.3. The device enrolls, then renews with a
# RenewalReq; the script checks that both certificates chain to B's root and that B
# knows them: B accepts their revocation. Everything listens on 127.0.0.1.
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
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out device-new.key 2>/dev/null

client=${CLIENT:-}
if [[ -z "$client" ]]; then
  if command -v pki >/dev/null; then client=strongswan; else client=micromdm-2.3; fi
fi
echo "client: $client"
case "$client" in
  strongswan)
    pki --scepca --url "$url" --caout ca.der --raout ra.der --force >/dev/null
    pki --scep --url "$url" --in device.key --dn "CN=bridged-device,O=certgate example" \
      --password "$challenge" --cacert-enc ra.der --cacert-sig ra.der --outform pem > device.crt
    # Renewal: a new key, requested with a RenewalReq signed by the first certificate.
    pki --scep --url "$url" --in device-new.key --dn "CN=bridged-device,O=certgate example" \
      --cacert-enc ra.der --cacert-sig ra.der --cert device.crt --key device.key --outform pem > renewed.crt
    ;;
  micromdm-2.1 | micromdm-2.3)
    if [[ "$client" == micromdm-2.1 ]]; then
      scepclient=$(command -v scepclient) || { echo "scepclient 2.1.0 is not installed (Debian package scep)" >&2; exit 1; }
    else
      (cd "$repo" && go build -modfile=.ci/peers/go.mod -o "$work/scepclient" github.com/micromdm/scep/v2/cmd/scepclient)
      scepclient=./scepclient
    fi
    # The micromdm clients encrypt to every certificate of GetCACert unless
    # -ca-fingerprint names the RA by the SHA-256 of its DER.
    fingerprint=$(openssl x509 -in ra-data/scep/ra-default.crt -outform DER | sha256sum | cut -d' ' -f1)
    # The client generates its key into device/client.key on first use.
    mkdir device
    "$scepclient" -server-url "$url" -private-key device/client.key -certificate device/client.pem \
      -challenge "$challenge" -cn bridged-device -organization "certgate example" -ca-fingerprint "$fingerprint"
    cp device/client.pem device.crt
    # With client.pem present the client sends a RenewalReq signed with it.
    "$scepclient" -server-url "$url" -private-key device/client.key -certificate device/client.pem \
      -cn bridged-device -organization "certgate example" -ca-fingerprint "$fingerprint"
    cp device/client.pem renewed.crt
    ;;
  certmonger)
    # certmonger's daemon on a private D-Bus session bus, with its state in the work
    # folder, so that a certmonger of the machine is not touched.
    mkdir -p cm/requests cm/cas
    dbus-daemon --session --fork --print-address=1 --print-pid=1 > cm/bus
    export DBUS_SESSION_BUS_ADDRESS=$(sed -n 1p cm/bus)
    pids+=("$(sed -n 2p cm/bus)")
    CERTMONGER_REQUESTS_DIR="$work/cm/requests" CERTMONGER_CAS_DIR="$work/cm/cas" certmonger -s -n &
    pids+=($!)
    openssl x509 -in ra-data/scep/ra-default.crt -out cm/ra.pem
    for _ in $(seq 50); do
      getcert add-scep-ca -s -c bridge -u "$url" -r "$work/cm/ra.pem" >/dev/null 2>&1 && break
      sleep 0.2
    done
    # The request waits for the CA certificates, which certmonger fetches in the background.
    for _ in $(seq 100); do
      getcert list-cas -s -c bridge | grep -q "SCEP CA certificate thumbprint" && break
      sleep 0.2
    done
    getcert request -s -c bridge -k "$work/device.key" -f "$work/device.crt" \
      -N "CN=bridged-device,O=certgate example" -L "$challenge" -w
    cp device.crt first.crt
    # certmonger renews by sending a new PKCSReq for the same key.
    id=$(getcert list -s | sed -n "s/^Request ID '\(.*\)':/\1/p" | head -1)
    getcert resubmit -s -i "$id" -w
    mv device.crt renewed.crt
    mv first.crt device.crt
    ;;
  *)
    echo "CLIENT=$client: use strongswan, micromdm-2.1, micromdm-2.3 or certmonger" >&2
    exit 2
    ;;
esac

openssl verify -CAfile ca-data/softca/root.crt -untrusted ca-data/softca/issuing.crt device.crt renewed.crt
if cmp -s device.crt renewed.crt; then
  echo "the renewal returned the first certificate again" >&2
  exit 1
fi
for cert in device.crt renewed.crt; do
  ./certgate cmp rr --server "http://127.0.0.1:$ca_http/.well-known/cmp" --ref default \
    --secret-file ca-data/secrets/cmp-default.secret --oldcert "$cert" --reason 5
done
echo "the device enrolled and renewed over SCEP; the CMP CA behind the RA issued both certificates and revoked them"
