#!/usr/bin/env bash
# `make demo` prints the demo's output, not the build's chatter (make's
# Entering/Leaving directory lines, cmake's progress and target lines).
set -euo pipefail
src="${SONDE_SOURCE_DIR:?}"
build="$(dirname "${SONDE_BIN_DIR:?}")"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
cd "$src"
# As a user types it (no -C, which prints its own Entering line).
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make demo BUILD="$build" DEMO_ARGS="--once" >"$out" 2>&1
if grep -nE "Entering directory|Leaving directory|Built target|Building C|Linking C|Consolidate compiler|^\[ *[0-9]+%\]|^-- " "$out"; then
  echo "FAIL: make demo printed build chatter (above)"
  exit 1
fi
grep -q "^# TYPE " "$out" || { echo "FAIL: no exposition in make demo's output:"; cat "$out"; exit 1; }
echo "ok: make demo shows the demo only ($(wc -l <"$out") lines)"
