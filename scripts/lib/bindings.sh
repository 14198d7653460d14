#!/usr/bin/env bash
# The TypeScript bindings: install from the lockfile, regenerate the wire types from
# `portd schema`, type-check and test, then fail if the generated file drifted.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT/bindings"
if ! command -v npm >/dev/null 2>&1; then
  echo "the bindings need Node.js >= 20 and npm on the PATH" >&2
  exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
PORTD_BIN="$ROOT/.venv/bin/portd" npm run --silent ci
git -C "$ROOT" diff --exit-code -- bindings/src/protocol.gen.ts
