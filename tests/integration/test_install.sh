#!/usr/bin/env bash
# Install sonde into a temporary prefix and build a consumer three ways:
# pkg-config, find_package(sonde), and add_subdirectory.
set -euo pipefail
: "${SONDE_SOURCE_DIR:?}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
consumer="$SONDE_SOURCE_DIR/tests/integration/consumer"

cmake -S "$SONDE_SOURCE_DIR" -B "$tmp/build" -DSONDE_BUILD_TESTS=OFF \
  -DCMAKE_INSTALL_PREFIX="$tmp/prefix" >/dev/null
cmake --build "$tmp/build" -j2 >/dev/null
cmake --install "$tmp/build" >/dev/null
test -f "$tmp/prefix/include/sonde.h"
test -f "$tmp/prefix/include/sonde/metrics.h"
# Nothing private is installed.
if find "$tmp/prefix/include" -name '*internal*' | grep -q .; then
  echo "private headers were installed"; exit 1
fi

echo "== pkg-config"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$tmp/prefix/lib/$(gcc -print-multiarch)/pkgconfig"
pkg-config --modversion sonde
cc "$consumer/app.c" $(pkg-config --cflags sonde) $(pkg-config --libs sonde) \
  -Wl,-rpath,"$(pkg-config --variable=libdir sonde)" -o "$tmp/app_pc"
"$tmp/app_pc"
cc "$consumer/app.c" -DSONDE_STATIC_DEFINE $(pkg-config --cflags sonde) \
  "$(pkg-config --variable=libdir sonde)/libsonde.a" \
  $(pkg-config --libs libmicrohttpd libcurl zlib sqlite3 yaml-0.1 hiredis libpq libprotobuf-c snappy) -lpthread -lm \
  -o "$tmp/app_pc_static"
"$tmp/app_pc_static"

echo "== find_package(sonde)"
cmake -S "$consumer" -B "$tmp/c1" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/c1" >/dev/null
LD_LIBRARY_PATH="$tmp/prefix/lib:$tmp/prefix/lib/$(gcc -print-multiarch)" "$tmp/c1/app_shared"
"$tmp/c1/app_static"

echo "== add_subdirectory"
cmake -S "$consumer" -B "$tmp/c2" -DSONDE_VIA_SUBDIRECTORY="$SONDE_SOURCE_DIR" >/dev/null
cmake --build "$tmp/c2" -j2 >/dev/null
"$tmp/c2/app_static"
# Tests are not built when sonde is a subproject.
if [ -e "$tmp/c2/sonde/tests" ] && ls "$tmp/c2/sonde/tests" | grep -q test_; then
  echo "sonde's tests were built as a subproject"; exit 1
fi

echo "== exported symbols carry the sonde_ prefix only"
lib=$(find "$tmp/prefix" -name 'libsonde.so.*' -type f | head -1)
test -n "$lib"
bad=$(nm -D --defined-only "$lib" | awk '$2 ~ /[TDBRV]/ {print $3}' | grep -v '^sonde_' | grep -v '^_' || true)
if [ -n "$bad" ]; then
  echo "unexpected exported symbols:"; echo "$bad"; exit 1
fi
echo ok
