#!/usr/bin/env bash
# Runs units of Redis's own Tcl test suite (from the Debian source package of the installed
# redis-server) twice each: once against a plain redis-server, once through this server (which
# proxies every ordinary command to that redis-server). Reports, per unit, the tests passed each
# way and the tests that pass directly but not through the server; exits 1 when there are any.
# Each unit gets a fresh redis-server (and a fresh server) so no unit sees another's config,
# stats, keys or clients. Slow: the 37 default units took 24.5 min on 2 shared cores (Redis 7.0.15;
# pause alone ~9 min through the server while INFO blocked_clients counts the server's own XREAD,
# as each of its tests waits out wait_for_blocked_clients_count). Not part of `npm test`.
#
#   npm run test:redis-suite
#   REDIS_SUITE_UNITS="type/string multi" npm run test:redis-suite
#
# Environment:
#   REDIS_SUITE_UNITS     units to run (default: the list below); missing units are skipped, said so
#   REDIS_SUITE_TIMEOUT   seconds per run of one unit (default 600); then the runtest process group
#                         is killed and the tests it did not report count as failed
#   REDIS_SUITE_MODES     "direct server" (default), or one of them (then no comparison is made)
#   REDIS_SUITE_OUT       output folder (default test-output/redis-suite; summary in test-output/redis-suite.txt)
#   REDIS_TESTS_DIR       where the Redis sources go (passed to the fetch tool)
#   REDIS_SUITE_ARGS      extra runtest arguments (e.g. "--only /GETEX" or "--tags -slow")
#   REDIS_SUITE_SERVER_ARGS  extra arguments for this server (e.g. "--follow no", to see what a cause costs)
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

DEFAULT_UNITS="type/list type/hash type/set type/zset type/string type/incr type/list-2 type/list-3
type/stream type/stream-cgroups keyspace expire multi pubsub pubsubshard protocol tracking scan sort
dump info info-command introspection introspection-2 scripting functions bitops bitfield geo
hyperloglog slowlog other querybuf lazyfree networking quit pause"
units=${REDIS_SUITE_UNITS:-$DEFAULT_UNITS}
unit_timeout=${REDIS_SUITE_TIMEOUT:-600}
modes=${REDIS_SUITE_MODES:-direct server}
out=${REDIS_SUITE_OUT:-$repo/test-output/redis-suite}
summary=$(dirname "$out")/redis-suite.txt
extra_args=${REDIS_SUITE_ARGS:-}
server_args=${REDIS_SUITE_SERVER_ARGS:-}

die() { echo "redis-suite: $*" >&2; exit 2; }
say() { echo "redis-suite: $*" >&2; }

command -v redis-server >/dev/null || die "redis-server is not installed (the suite runs against it)"
command -v redis-cli >/dev/null || die "redis-cli is not installed"

# --- Tcl -------------------------------------------------------------------------------------
if ! command -v tclsh >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    say "installing tcl (Debian package)"
    apt-get install -y -qq --no-install-recommends tcl >/dev/null 2>&1 || die "apt-get install tcl failed"
  else
    die "tclsh is missing and installing it needs root: apt-get install -y --no-install-recommends tcl"
  fi
fi

# --- The test suite of the installed version -------------------------------------------------
fetch_tests() {
  local tool=$repo/../shared/tools/redis-tests.sh
  if [ -x "$tool" ]; then "$tool"; return; fi
  # Fallback: the same as the shared tool (Debian source package through a private apt state).
  local root=${REDIS_TESTS_DIR:-${TMPDIR:-/tmp}/redis-tests} dst ver O
  dst=$root/redis-src
  if ls -d "$dst"/redis-*/tests >/dev/null 2>&1; then ls -d "$dst"/redis-*/ | head -1; return; fi
  [ "$(id -u)" = 0 ] || { echo "the Redis sources are not fetched and apt-get source needs root here" >&2; return 1; }
  ver=$(dpkg-query -W -f='${Version}' redis-server 2>/dev/null) || { echo "redis-server is not a Debian package here: no source package to fetch" >&2; return 1; }
  ls /etc/apt/sources.list.d/*.sources >/dev/null 2>&1 || { echo "no deb822 apt sources to turn into deb-src" >&2; return 1; }
  mkdir -p "$dst"/{parts,lists,cache/archives/partial}
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/*.sources > "$dst/parts/src.sources"
  O="-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$dst/parts -o Dir::State::Lists=$dst/lists -o Dir::Cache=$dst/cache"
  apt-get $O update -qq >/dev/null 2>&1
  command -v dpkg-source >/dev/null || apt-get install -y -qq dpkg-dev >/dev/null 2>&1
  (cd "$dst" && apt-get $O source -qq "redis=$ver" >/dev/null 2>&1) || { echo "apt-get source redis=$ver failed" >&2; return 1; }
  ls -d "$dst"/redis-*/ | head -1
}
src=$(fetch_tests) || die "cannot get Redis's Tcl tests (see above)"
src=${src%/}
[ -x "$src/runtest" ] && [ -d "$src/tests/unit" ] || die "no runtest/tests/unit in $src"
say "tests: $src ($(redis-server --version | awk '{print $3}'))"

# --- Build -----------------------------------------------------------------------------------
if [[ " $modes " == *" server "* ]]; then
  node scripts/build.mjs >&2 || die "build failed"
fi

free_port() {
  node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"
}
wait_ping() { # port seconds
  local i
  for ((i = 0; i < $2 * 10; i++)); do
    [ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  return 1
}
stop_pid() { # pid: TERM, then KILL after 5 s
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}

redis_pid= server_pid= tmp=
cleanup() { stop_pid "$server_pid"; stop_pid "$redis_pid"; server_pid= redis_pid=; [ -n "$tmp" ] && rm -rf "$tmp"; tmp=; }
trap 'cleanup; exit 130' INT TERM
trap cleanup EXIT

# Starts a fresh redis-server (as Redis's own CI runs the suite in external mode: no saving,
# DEBUG, MODULE and protected configs allowed), and in server mode this server in front of it.
# Sets $port (what runtest talks to).
start_backends() { # mode logprefix
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/redis-suite.XXXXXX")
  local rport sport
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --dir "$tmp" --save '' --appendonly no --daemonize no \
    --enable-protected-configs yes --enable-debug-command yes --enable-module-command yes \
    --logfile "$2.redis.log" &
  redis_pid=$!
  wait_ping "$rport" 20 || { say "redis-server did not start (see $2.redis.log)"; return 1; }
  port=$rport
  if [ "$1" = server ]; then
    sport=$(free_port)
    mkdir -p "$tmp/server"
    node dist/src/cli.js --port "$sport" --redis "redis://127.0.0.1:$rport" --dir "$tmp/server" --log-level warn $server_args \
      >"$2.server.log" 2>&1 &
    server_pid=$!
    wait_ping "$sport" 30 || { say "the server did not start (see $2.server.log)"; return 1; }
    port=$sport
  fi
}

mkdir -p "$out"
rm -f "$out"/*.log "$out/missing.txt"
start_all=$(date +%s)
ran_units=()
for u in $units; do
  if [ ! -f "$src/tests/unit/$u.tcl" ]; then
    say "unit $u: not in this Redis version's suite, skipped"
    echo "unit/$u" >>"$out/missing.txt"
    continue
  fi
  ran_units+=("$u")
  f=${u//\//-}
  for mode in $modes; do
    log=$out/$f.$mode.log
    t0=$(date +%s)
    if ! start_backends "$mode" "$out/$f.$mode"; then
      echo "[suite-error]: could not start the backends" >"$log"
      cleanup
      continue
    fi
    # runtest listens on a port below --baseport and probes baseport+10000: both stay below the
    # ephemeral range (32768+), where a port in use by some outgoing connection makes runtest
    # fail at once with "couldn't open socket: address already in use"; then it is retried.
    for attempt in 1 2 3; do
      baseport=$((2000 + RANDOM % 18000))
      # timeout(1) puts runtest (and the test client it spawns) in its own process group and
      # signals that whole group when time is up.
      # --durable: an error that is not an assertion fails that test only instead of ending the unit.
      (cd "$src" && TERM=dumb timeout -k 15 "$unit_timeout" ./runtest --host 127.0.0.1 --port "$port" --singledb \
        --ignore-encoding --ignore-digest --durable --clients 1 --baseport "$baseport" --single "unit/$u" $extra_args) \
        </dev/null >"$log" 2>&1
      rc=$?
      grep -q "^couldn't open socket: address already in use" "$log" && ! grep -q '^\[ok\]' "$log" || break
    done
    [ $rc = 124 ] || [ $rc = 137 ] && echo "[suite-timeout]: killed after ${unit_timeout}s" >>"$log"
    echo "[suite-exit]: $rc" >>"$log"
    cleanup
    say "unit $u via $mode: rc=$rc in $(($(date +%s) - t0))s ($(grep -c '^\[ok\]' "$log") ok, $(grep -c '^\[err\]' "$log") err)"
  done
done
elapsed=$(($(date +%s) - start_all))

node scripts/redis-suite-compare.mjs "$out" "$summary" "$elapsed" "$src" "$modes" "${ran_units[@]}"
