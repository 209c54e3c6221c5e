#!/usr/bin/env bash
# Measures certgate's CMP enrollment speed next to the crypto floor and OpenSSL's CMP mock
# server, and its SCEP enrollment speed next to micromdm's scepserver, on this machine
# and in one run. It rewrites the generated section of docs/benchmarks.md with the
# results and keeps the text around it.
#
#   examples/bench/run.sh [--duration 10s] [--concurrency 1,8,32,128] [--baseline REV] [--out FILE]
#
# --baseline REV also builds certgate from git revision REV and measures it with CMP in
# the same run, for before-and-after figures. REV must have the tcp section in its
# configuration.
#
# Needs Go, git, openssl (3.0 or later), scepserver (micromdm/scep, Debian package scep),
# unshare and ip from util-linux and iproute2, and root. The servers and the load
# generator run in a new network namespace with only the loopback interface, because
# OpenSSL 3.0's mock server and scepserver listen on all interfaces. The build runs
# before, outside the namespace, so that Go can fetch missing modules.
#
# With the defaults the run takes about five minutes after the build.
set -euo pipefail

if [[ ${CERTGATE_BENCH_INSIDE:-} != 1 ]]; then
  duration=10s
  concurrency=1,8,32,128
  baseline=""
  here=$(cd "$(dirname "$0")" && pwd)
  repo=$(cd "$here/../.." && pwd)
  out="$repo/docs/benchmarks.md"
  command_line="examples/bench/run.sh${*:+ $*}"
  while (($# > 0)); do
    case $1 in
      --duration) duration=$2; shift 2 ;;
      --concurrency) concurrency=$2; shift 2 ;;
      --baseline) baseline=$2; shift 2 ;;
      --out) out=$(realpath -m "$2"); shift 2 ;;
      *) echo "usage: $0 [--duration 10s] [--concurrency 1,8,32,128] [--baseline REV] [--out FILE]" >&2; exit 2 ;;
    esac
  done
fi

# measure runs inside the network namespace: it starts the servers, measures and writes
# the report. It reads the variables that the outer part exports.
measure() {
  ip link set lo up
  local results=$work/results.jsonl
  server_pids=()
  scep_pid=""
  trap 'for p in "${server_pids[@]}" $scep_pid; do kill "$p" 2>/dev/null || true; done; wait' EXIT

  # start_certgate NAME BINARY PORT [TCP_PORT] starts certgate with a fresh data folder,
  # with CMP over TCP on TCP_PORT when given, and records its start-to-ready time and
  # idle RSS. Lines on standard input are appended to its configuration.
  start_certgate() {
    local name=$1 binary=$2 port=$3 tcp="tcp: {listen: []}" dir=$work/$1
    if [[ -n ${4:-} ]]; then
      # All clients connect from 127.0.0.1, so the per-client connection limit must
      # allow the highest client count.
      tcp="tcp: {listen: [\"127.0.0.1:$4\"], max_connections_per_client: 1024}"
    fi
    mkdir -p "$dir"
    cat >"$dir/certgate.yaml" <<EOF
data_dir: data
log: {level: info, format: text}
http: {listen: ["127.0.0.1:$port"]}
$tcp
EOF
    cat >>"$dir/certgate.yaml"
    local started
    started=$(date +%s%N)
    (cd "$dir" && exec "$binary" serve --config certgate.yaml >certgate.log 2>&1) &
    local pid=$!
    server_pids+=("$pid")
    "$bin/certgate-bench" ready -log "$dir/certgate.log" -pid "$pid" -started-at "$started" -target "$name" -results "$results"
    sleep 2 # let the start-up garbage be collected before the idle RSS is read
    "$bin/certgate-bench" idle -pid "$pid" -target "$name" -results "$results"
    eval "pid_${name//-/_}=$pid"
  }

  start_certgate certgate "$bin/certgate" 18080 18083 </dev/null
  if [[ -n $baseline ]]; then
    start_certgate certgate-baseline "$bin/certgate-baseline" 18081 </dev/null
  fi
  # The SCEP workload runs against a second instance whose software CA has RSA 2048
  # keys, as scepserver's CA has. The instance above keeps the default P-256 CA that
  # the CMP figures and the floor assume.
  start_certgate certgate-scep "$bin/certgate" 18082 <<EOF
backends:
  - name: softca
    plugin: builtin:softca
    config: {key_algorithm: rsa-2048}
EOF

  # start_scepserver starts scepserver on a fresh copy of the depot that holds only its
  # CA. It reads its whole index.txt on every enrollment, so its cost per enrollment
  # grows with the certificates it issued before. -allowrenew 0 lets it issue again for
  # a subject that the workload repeats. With the default of 14 it rejects a second
  # certificate for a subject whose first is valid for more than 14 days.
  start_scepserver() {
    local dir=$work/scepserver/run
    rm -rf "$dir"
    mkdir -p "$dir"
    cp -R "$work/scepserver/depot" "$dir/depot"
    (cd "$dir" && exec scepserver -port 18090 -depot depot -challenge "$(cat "$work/scepserver/challenge")" \
      -allowrenew 0 >scepserver.log 2>&1) &
    scep_pid=$!
    "$bin/certgate-bench" ready -addr 127.0.0.1:18090 -pid "$scep_pid" -target scepserver
  }
  # stop_scepserver CLIENTS stops scepserver and records how many certificates of its
  # index.txt repeat the serial number of an earlier one. Its file depot reads and
  # rewrites the serial file without a lock, so concurrent enrollments can get the same
  # number.
  repeated_serials=()
  stop_scepserver() {
    kill "$scep_pid"
    wait "$scep_pid" || true
    scep_pid=""
    local index=$work/scepserver/run/depot/index.txt total unique clients_text="$1 clients"
    total=$(wc -l <"$index")
    unique=$(cut -f4 "$index" | sort -u | wc -l)
    if (($1 == 1)); then
      clients_text="1 client"
    fi
    repeated_serials+=("$((total - unique)) of $total at $clients_text")
  }

  openssl cmp -port 18829 -srv_ref mock -srv_secret file:"$work/mock/secret" \
    -rsp_cert "$work/mock/issued.crt" -grant_implicitconf >"$work/mock/mock.log" 2>&1 &
  local mock_pid=$!
  server_pids+=("$mock_pid")
  "$bin/certgate-bench" ready -addr 127.0.0.1:18829 -pid "$mock_pid" -target openssl-mock

  local load=("$bin/certgate-bench" load -duration "$duration" -results "$results")
  "$bin/certgate-bench" floor -duration "$duration" -results "$results"
  for clients in ${concurrency//,/ }; do
    "${load[@]}" -target certgate -concurrency "$clients" -server-pid "$pid_certgate" \
      -url http://127.0.0.1:18080/.well-known/cmp -secret-file "$work/certgate/data/secrets/cmp-default.secret"
    if [[ -n $baseline ]]; then
      "${load[@]}" -target certgate-baseline -concurrency "$clients" -server-pid "$pid_certgate_baseline" \
        -url http://127.0.0.1:18081/.well-known/cmp -secret-file "$work/certgate-baseline/data/secrets/cmp-default.secret"
    fi
    "${load[@]}" -target openssl-mock -concurrency "$clients" -server-pid "$mock_pid" \
      -url http://127.0.0.1:18829/ -ref mock -secret-file "$work/mock/secret" -check-key=false -keep-alive=false
    "${load[@]}" -workload cmp-tcp-ir -target certgate -concurrency "$clients" -server-pid "$pid_certgate" \
      -tcp-address 127.0.0.1:18083 -secret-file "$work/certgate/data/secrets/cmp-default.secret"

    "${load[@]}" -workload scep-pkcsreq -target certgate -concurrency "$clients" -server-pid "$pid_certgate_scep" \
      -scep-url http://127.0.0.1:18082/scep -challenge-file "$work/certgate-scep/data/secrets/scep-default.challenge"
    start_scepserver
    "${load[@]}" -workload scep-pkcsreq -target scepserver -concurrency "$clients" -server-pid "$scep_pid" \
      -scep-url http://127.0.0.1:18090/scep -challenge-file "$work/scepserver/challenge"
    stop_scepserver "$clients"
  done
  "$bin/certgate-bench" floor -duration "$duration" -results "$results"

  local report=("$bin/certgate-bench" report -results "$results" -out "$out" -command "$command_line"
    -version "certgate: $certgate_version" -version "$(go version)" -version "$(openssl version)"
    -version "scepserver: $scepserver_version"
    -note "openssl-mock is \`openssl cmp -port\`, the mock server of OpenSSL 3.0.19: single-threaded, it checks the request and returns one fixed certificate, so it issues nothing and stores nothing. It answers \"Connection: keep-alive\" but closes the connection after each response, so the generator opens a new connection for each of its requests."
    -note "The floor is measured before and after the servers; the table shows the mean."
    -note "For SCEP, certgate is a second instance (certgate-scep in the start table) whose softca has RSA 2048 CA keys (key_algorithm: rsa-2048); its gateway decrypts and signs with its RSA 2048 RA key. scepserver is micromdm's scepserver with its file depot and an RSA 2048 CA (\`scepserver ca -init -keySize 2048\`), which decrypts, signs and issues with that one key. It runs as \`scepserver -port 18090 -depot DIR -challenge SECRET -allowrenew 0\` and is restarted with a depot that holds only the CA before each client count, because it reads its whole index.txt on every enrollment.")
  local serials
  serials=$(printf '%s, ' "${repeated_serials[@]}")
  report+=(-note "Certificates in scepserver's index.txt with the serial number of an earlier certificate, warm-up included: ${serials%, }. Its file depot reads and rewrites the serial file without a lock, so concurrent enrollments can get the same serial number, and the same race makes some of them fail with badRequest.")
  if [[ -n $baseline ]]; then
    report+=(-note "certgate-baseline is certgate built from git revision $baseline; certgate is the working tree.")
  fi
  "${report[@]}"
  echo "wrote $out"
}

if [[ ${CERTGATE_BENCH_INSIDE:-} == 1 ]]; then
  measure
  exit 0
fi

if [[ $(id -u) != 0 ]]; then
  echo "run.sh needs root for unshare -n (a private network namespace)" >&2
  exit 1
fi
for tool in go git openssl scepserver unshare ip; do
  command -v "$tool" >/dev/null || { echo "run.sh needs $tool on the PATH" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bin=$work/bin
echo "--- building in $work"
(cd "$repo" && go build -o "$bin/certgate" ./gateway/cmd/certgate && go build -o "$bin/certgate-bench" ./gateway/cmd/certgate-bench)
certgate_version=$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)
if [[ -n $baseline ]]; then
  mkdir "$work/baseline-src"
  git -C "$repo" archive "$baseline" | tar -x -C "$work/baseline-src"
  (cd "$work/baseline-src" && go build -o "$bin/certgate-baseline" ./gateway/cmd/certgate)
fi

# The mock's credentials: the shared secret and the certificate it returns.
mkdir "$work/mock"
openssl rand -hex 16 >"$work/mock/secret"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/mock/issued.key" \
  -subj /CN=openssl-mock-issued -days 2 -out "$work/mock/issued.crt" 2>/dev/null

# scepserver's CA with an RSA 2048 key, and the challenge password of its clients.
mkdir "$work/scepserver"
(cd "$work/scepserver" && scepserver ca -init -depot depot -keySize 2048 >ca.log 2>&1)
openssl rand -hex 16 >"$work/scepserver/challenge"
scepserver_version="micromdm scepserver $(scepserver -version)"
if package_version=$(dpkg-query -W -f '${Version}' scep 2>/dev/null); then
  scepserver_version+=" (Debian package scep $package_version)"
fi

echo "--- measuring in a private network namespace"
export work bin out baseline duration concurrency command_line certgate_version scepserver_version
CERTGATE_BENCH_INSIDE=1 unshare -n bash "$0"
