#!/usr/bin/env bash
# Like curl: unsafe C functions are banned from the library, CLI and
# examples. snprintf/vsnprintf are fine (their return value is clamped).
set -euo pipefail
: "${SONDE_SOURCE_DIR:?}"
cd "$SONDE_SOURCE_DIR"
pattern='(^|[^a-z_])(sprintf|vsprintf|strcpy|strcat|strtok|atoi|atol|gets)[[:space:]]*\('
hits=$(grep -rnE "$pattern" src cli examples include 2>/dev/null || true)
if [ -n "$hits" ]; then
  echo "banned functions used:"
  echo "$hits"
  exit 1
fi
echo "no banned functions in src/ cli/ examples/ include/"
