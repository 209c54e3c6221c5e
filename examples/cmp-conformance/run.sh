#!/usr/bin/env bash
# Runs OpenSSL 3.0's CMP client test cases against certgate.
#
#   examples/cmp-conformance/run.sh KIT_DIR [PORT]
#
# KIT_DIR is the conformance kit: a folder with the runner "run" and "data/Mock", the
# CSV files and credentials of OpenSSL's test/recipes/80-test_cmp_http_data. The script
# builds certgate, starts it on 127.0.0.1:PORT and [::1]:PORT (default 18829) with
# certgate.yaml, runs the kit, stops certgate and exits with the kit's status. Extra
# arguments after PORT go to the kit's runner (for example --csv enrollment).
set -euo pipefail
kit=${1:?usage: run.sh KIT_DIR [PORT] [runner options]}
port=${2:-18829}
shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
kit=$(cd "$kit" && pwd)

work=$(mktemp -d)
cleanup() {
  [[ -n "${pid:-}" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

cp -r "$kit/data/Mock" "$work/mock"
chmod -R u+w "$work/mock"
printf 'test\n' > "$work/mock/secret.txt"
# The issuing CA's chain above it: interCA (the second certificate of
# signer_issuing.crt), then the root.
awk '/BEGIN CERT/{n++} n==2' "$work/mock/signer_issuing.crt" > "$work/mock/chain.pem"
cat "$work/mock/root.crt" >> "$work/mock/chain.pem"
chmod 600 "$work/mock/secret.txt" "$work/mock/issuing.key" "$work/mock/server.key"
sed "s/PORT/$port/g" "$here/certgate.yaml" > "$work/certgate.yaml"

(cd "$repo" && go build -o "$work/certgate" ./gateway/cmd/certgate)
(cd "$work" && exec ./certgate serve --config certgate.yaml >certgate.log 2>&1) &
pid=$!
for _ in $(seq 100); do
  grep -q "certgate ready" "$work/certgate.log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/certgate.log"; exit 1; }
  sleep 0.1
done

status=0
"$kit/run" --server "127.0.0.1:$port" --path .well-known/cmp "$@" || status=$?
if [[ $status -ne 0 && -n "${CERTGATE_LOG:-}" ]]; then
  cp "$work/certgate.log" "$CERTGATE_LOG"
fi
exit $status
