#!/usr/bin/env bash
# Start and stop private instances of the servers the tests talk to, each in
# its own directory on a loopback port, as the current user (PostgreSQL
# refuses root: then it runs as "nobody"). Installed by scripts/deps.sh.
#
#   scripts/services.sh postgres start DIR PORT    # trust auth, user "sonde", db "postgres";
#                                                  # an existing DIR is restarted, data kept
#   scripts/services.sh postgres stop DIR
#   scripts/services.sh redis start DIR PORT [PASSWORD]
#   scripts/services.sh redis stop DIR
#   scripts/services.sh prometheus start DIR PORT TARGET [INTERVAL]  # scrapes http://TARGET/metrics
#     (extra prometheus flags from $SONDE_PROMETHEUS_FLAGS, e.g. --enable-feature=...)
#   scripts/services.sh prometheus start DIR PORT --config FILE        # runs FILE as it is
#   scripts/services.sh prometheus stop DIR
#   scripts/services.sh free-port                  # print a free loopback TCP port
#
# start waits until the server accepts connections (at most 30 s) and fails
# with its log otherwise; stop waits until it is gone and never fails.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}

die() { echo "services.sh: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Run a command as the unprivileged owner of DIR when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u nobody -- "$@"
  else
    "$@"
  fi
}

wait_port() { # port seconds
  for _ in $(seq $(( $2 * 10 ))); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

pg_start() {
  local dir=$1 port=$2
  mkdir -p "$dir"
  if [ "$(id -u)" -eq 0 ]; then
    chown nobody:nogroup "$dir"
    chmod 700 "$dir"
    # nobody must be able to reach the directory.
    local d; d=$(dirname "$dir")
    while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done
  fi
  # A directory that already holds a cluster is started again as it is
  # (tests that stop and restart the server keep their data).
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$PG_BIN/initdb" -D "$dir/data" -U sonde --auth=trust --no-sync -E UTF8 \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 30 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null \
    || { cat "$dir/postgres.log" >&2; die "postgres did not start"; }
}

pg_stop() {
  local dir=$1
  [ -d "$dir/data" ] || return 0
  as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
}

redis_start() {
  local dir=$1 port=$2 pass=${3:-}
  mkdir -p "$dir"
  local args=(--port "$port" --bind 127.0.0.1 --dir "$dir" --daemonize yes
              --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --appendonly no)
  [ -n "$pass" ] && args+=(--requirepass "$pass")
  redis-server "${args[@]}" || die "redis-server failed"
  wait_port "$port" 30 || { cat "$dir/redis.log" >&2; die "redis did not start"; }
}

stop_pidfile() { # pidfile
  [ -f "$1" ] || return 0
  local pid; pid=$(cat "$1")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$1"
}

prom_start() {
  local dir=$1 port=$2 target=$3 interval=${4:-1s}
  mkdir -p "$dir/data"
  local config="$dir/prometheus.yml"
  if [ "$target" = "--config" ]; then
    config=$interval
  else
  cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: $interval
  evaluation_interval: $interval
scrape_configs:
  - job_name: sonde
    static_configs:
      - targets: ["$target"]
EOF
  fi
  prometheus --config.file="$config" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" --log.level=warn ${SONDE_PROMETHEUS_FLAGS:-} \
    >"$dir/prometheus.log" 2>&1 &
  echo $! >"$dir/prometheus.pid"
  for _ in $(seq 300); do
    if curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then return 0; fi
    kill -0 "$(cat "$dir/prometheus.pid")" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/prometheus.log" >&2
  die "prometheus did not start"
}

case "${1:-} ${2:-}" in
  "postgres start") pg_start "$3" "$4" ;;
  "postgres stop") pg_stop "$3" ;;
  "redis start") redis_start "$3" "$4" "${5:-}" ;;
  "redis stop") stop_pidfile "$3/redis.pid" ;;
  "prometheus start") prom_start "$3" "$4" "$5" "${6:-1s}" ;;
  "prometheus stop") stop_pidfile "$3/prometheus.pid" ;;
  "free-port "*) free_port ;;
  *) sed -n '2,18p' "$0" >&2; exit 64 ;;
esac
