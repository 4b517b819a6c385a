#!/usr/bin/env bash
# Install the Debian packages that building and testing sonde need, only the
# missing ones. Idempotent; silent when nothing is missing.
#   scripts/deps.sh          build + test dependencies
#   scripts/deps.sh --build  only what building the library needs
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config g++
  libmicrohttpd-dev libcurl4-openssl-dev zlib1g-dev libdeflate-dev libsqlite3-dev
  libyaml-dev libhiredis-dev libpq-dev libcrypt-dev
  libprotobuf-c-dev protobuf-c-compiler libsnappy-dev
)
test_pkgs=(
  clang libclang-rt-14-dev clang-format jq curl locales valgrind
  prometheus python3 python3-prometheus-client
  prometheus-alertmanager prometheus-pushgateway victoria-metrics prometheus-sql-exporter redis-server postgresql
  sqlite3 wrk
  openssl util-linux protobuf-compiler python3-protobuf chromium python3-yaml
)

pkgs=("${build_pkgs[@]}")
[ "${1:-}" = "--build" ] || pkgs+=("${test_pkgs[@]}")

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Services installed here are started by the tests on their own ports; keep
# Debian's post-install scripts from starting system-wide instances.
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/sonde-deps.log 2>&1; then
  $SUDO apt-get update -qq >>/tmp/sonde-deps.log 2>&1
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/sonde-deps.log 2>&1 || {
    echo "deps: apt-get install failed; see /tmp/sonde-deps.log" >&2
    tail -20 /tmp/sonde-deps.log >&2
    exit 1
  }
fi
