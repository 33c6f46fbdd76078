#!/usr/bin/env bash
# What the test suite can check of the deployment without a container runtime (run by CTest):
#   check.sh ROOT BUILD_DIR WEB_SITE WORKDIR
# 1. scripts/krmx.sh install, the Dockerfile's build step, into WORKDIR/prefix (counter_server from BUILD_DIR).
# 2. The Dockerfile: two stages, the build stage runs that install, the final stage runs as a user that is
#    not root, and its runtime packages provide every library counter_server links (readelf NEEDED ->
#    dpkg -S), beyond those of debian:12-slim itself.
# 3. docker-compose.yml: valid YAML of the expected shape (PostgreSQL with a health check, counter_server
#    waiting for it, certificates mounted read-only, a health check on /readyz), and its counter command
#    runs: the installed counter_server with exactly those arguments, against a throw-away PostgreSQL (on a
#    unix socket) and a certificate made here, answers /healthz, /readyz and /metrics (with the token) over
#    https, reloads its certificate on SIGHUP and stops cleanly on SIGTERM.
# 4. The systemd unit: systemd-analyze verify.
set -euo pipefail
root="$1" build="$2" site="$3" work="$4"
python=/usr/bin/python3  # Debian's, with python3-yaml
deploy="$root/examples/deploy"
rm -rf "$work" && mkdir -p "$work"
chmod 0755 "$work"
pid="" pg=""
cleanup() {
  if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
  if [ -n "$pg" ]; then runuser -u postgres -- "$pg/pg_ctl" -D "$work/pg/data" -m immediate -w stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

echo "== 1. scripts/krmx.sh install"
"$root/scripts/krmx.sh" install "$work/prefix" --build "$build" --web "$site"
server="$work/prefix/bin/counter_server"
[ -x "$server" ] || fail "no $server"
[ -f "$work/prefix/share/krmx/web/index.html" ] || fail "no web page installed"

echo "== 2. Dockerfile"
grep -q '^RUN .*scripts/krmx.sh install /opt/krmx' "$deploy/Dockerfile" || fail "the build stage does not run scripts/krmx.sh install"
[ "$(grep -c '^FROM ' "$deploy/Dockerfile")" -eq 2 ] || fail "not two stages"
grep -q '^FROM debian:12 AS build' "$deploy/Dockerfile" || fail "the build stage is not Debian 12"
grep -q '^FROM debian:12-slim' "$deploy/Dockerfile" || fail "the final stage is not Debian 12 slim"
# The build context leaves out build trees, npm packages and the certificates' folder (.dockerignore).
for ignored in build '**/node_modules' examples/deploy/certs; do
  grep -qxF "$ignored" "$root/.dockerignore" || fail ".dockerignore does not leave out $ignored"
done
user=$(sed -n 's/^USER \(.*\)/\1/p' "$deploy/Dockerfile" | tail -1)
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || fail "the final stage runs as root"
# The runtime packages: the lines after the marker, up to the line that ends the apt-get command.
runtime=$(sed -n '/^# runtime-packages/,/rm -rf \/var\/lib\/apt/p' "$deploy/Dockerfile" \
  | grep -E '^\s+[a-z0-9][a-z0-9.+-]+ \\$' | awk '{print $1}' | sort -u)
[ -n "$runtime" ] || fail "no runtime packages found in the Dockerfile"
# In every debian:12-slim image (Priority: required); and the sanitizers' runtimes, which only the test
# suite's sanitized build links (the image's Release build does not).
base="libc6 libgcc-s1 libstdc++6 zlib1g libasan8 libubsan1"
for lib in $(readelf -d "$server" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
  path=$(ldd "$server" | awk -v l="$lib" '$1 == l { print $3 }')
  [ -n "$path" ] || fail "ldd does not resolve $lib"
  pkg=""
  for candidate in "$path" "$(realpath "$path")" "${path#/usr}" "/usr${path}"; do
    pkg=$(dpkg -S "$candidate" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$pkg" ] && break
  done
  [ -n "$pkg" ] || fail "no Debian package owns $path ($lib)"
  if ! grep -qx "$pkg" <<<"$runtime" && ! grep -qw "$pkg" <<<"$base"; then
    fail "counter_server links $lib from $pkg, which the Dockerfile's final stage does not install"
  fi
  echo "  $lib <- $pkg"
done

echo "== 3. docker-compose.yml"
"$python" - "$deploy/docker-compose.yml" >"$work/command.txt" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
def need(cond, what):
    if not cond:
        sys.exit("docker-compose.yml: " + what)
services = doc.get("services", {})
need(set(services) == {"postgres", "counter"}, "services are not postgres and counter")
pg = services["postgres"]
need(pg["image"].startswith("postgres:"), "postgres runs no postgres image")
need("pg_isready" in " ".join(pg["healthcheck"]["test"]), "postgres has no pg_isready health check")
c = services["counter"]
need(c["build"]["dockerfile"] == "examples/deploy/Dockerfile", "counter is not built from the Dockerfile")
need(c["depends_on"]["postgres"]["condition"] == "service_healthy", "counter does not wait for a healthy postgres")
need(any(v.endswith(":/certs:ro") for v in c["volumes"]), "the certificates are not mounted read-only")
need("/readyz" in " ".join(c["healthcheck"]["test"]), "counter's health check does not ask /readyz")
need(all(isinstance(a, str) for a in c["command"]), "the command's arguments are not strings")
need("PGPASSWORD" in c["environment"], "no PGPASSWORD for libpq")
need(set(doc.get("volumes", {})) == {"postgres-data"}, "volumes")
print("\n".join(c["command"]))
PY
mapfile -t compose_args <"$work/command.txt"
echo "  counter: ${compose_args[*]}"

# A throw-away PostgreSQL on a unix socket in $work/pg (no TCP), a role and database as in the compose file.
pg=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$pg/initdb" ] || fail "no PostgreSQL server (apt-get install postgresql)"
mkdir -p "$work/pg" && chown postgres "$work/pg"
runuser -u postgres -- "$pg/initdb" -D "$work/pg/data" -U postgres -A trust --no-sync >/dev/null
runuser -u postgres -- "$pg/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w -t 30 \
  -o "-c listen_addresses='' -k $work/pg -c fsync=off" start >/dev/null
psql_() { runuser -u postgres -- psql -h "$work/pg" -U postgres -d postgres -qAt -c "$1" >/dev/null; }
psql_ "CREATE ROLE krmx LOGIN PASSWORD 'compose-secret'"
psql_ "CREATE DATABASE krmx OWNER krmx"

# A certificate for 127.0.0.1, as certbot would leave one.
mkdir -p "$work/certs"
make_cert() {
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=$1" -addext "subjectAltName=IP:127.0.0.1" \
    -keyout "$work/certs/key.pem" -out "$work/certs/cert.pem" 2>/dev/null
}
make_cert krmx-first

# The compose command, with what only the container has replaced: the database host (here a socket
# folder), the certificates' folder, the web page's place, the port (any free one) and the address.
args=()
for ((i = 0; i < ${#compose_args[@]}; i++)); do
  a="${compose_args[$i]}"
  case "$a" in
    0.0.0.0) a=127.0.0.1 ;;
    8443) a=0 ;;
    host=postgres*) a="${a/host=postgres/host=$work/pg}" ;;
    /certs/*) a="$work/certs/${a#/certs/}" ;;
    /opt/krmx/*) a="$work/prefix/${a#/opt/krmx/}" ;;
  esac
  args+=("$a")
done
export PGPASSWORD=compose-secret KRMX_METRICS_TOKEN=compose-token
"$server" "${args[@]}" >"$work/server.out" 2>"$work/server.log" &
pid=$!
port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's|.*listening on wss\?://127.0.0.1:\([0-9]*\).*|\1|p' "$work/server.out")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$port" ] || { cat "$work/server.out" "$work/server.log"; fail "counter_server did not start with the compose command"; }
url="https://127.0.0.1:$port"
curl_() { curl -fsS --max-time 5 --cacert "$work/certs/cert.pem" "$@"; }
[ "$(curl_ "$url/healthz")" = ok ] || fail "/healthz"
curl_ "$url/readyz" >/dev/null || fail "/readyz is not ready"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$work/certs/cert.pem" "$url/metrics")
[ "$code" = 401 ] || fail "/metrics without the token answered $code"
# Read whole, then searched: `curl | grep -q` fails under pipefail when grep stops reading before curl has
# written everything (curl: (23)), as it did once the scrape outgrew a pipe's buffer.
metrics=$(curl_ -H "Authorization: Bearer compose-token" "$url/metrics") || fail "/metrics with the token"
grep -q '^krmx_' <<<"$metrics" || fail "/metrics with the token has no krmx_ metrics"
page=$(curl_ "$url/") || fail "the web page over https"
grep -qi '<html' <<<"$page" || fail "the web page is not served over https"
subject() { openssl s_client -connect "127.0.0.1:$port" -servername 127.0.0.1 </dev/null 2>/dev/null | openssl x509 -noout -subject; }
subject | grep -q krmx-first || fail "the first certificate is not served"
# certbot renews: new files, SIGHUP, and new connections get the new certificate without a restart.
make_cert krmx-renewed
kill -HUP "$pid"
for _ in $(seq 1 100); do subject | grep -q krmx-renewed && break; sleep 0.05; done
subject | grep -q krmx-renewed || fail "SIGHUP did not reload the certificate"
kill -0 "$pid" || fail "counter_server died on SIGHUP"
kill -TERM "$pid"
for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
wait "$pid" || { cat "$work/server.log"; fail "counter_server did not stop cleanly on SIGTERM"; }
pid=""
grep -q '^stopped$' "$work/server.out" || fail "no clean stop"
grep -q '"event":"server.started"' "$work/server.log" || fail "no JSON log line for the start"
echo "  the compose command served https, health, metrics, reloaded its certificate and stopped"

echo "== 4. systemd unit"
# The unit as installed, with its paths pointing into this test's prefix (verify wants ExecStart to exist).
sed -e "s|/opt/krmx|$work/prefix|g" "$deploy/krmx-counter.service" >"$work/krmx-counter.service"
if ! systemd-analyze verify "$work/krmx-counter.service" >"$work/verify.log" 2>&1; then
  cat "$work/verify.log"; fail "systemd-analyze verify"
fi
grep -v -e 'Failed to .*user\|group' "$work/verify.log" || true
echo "deployment checks passed"
