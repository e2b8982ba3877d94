#!/usr/bin/env bash
# Runs the compiled specs (*.spec.js) under the given directories (default: all of dist/test) with
# Node's test runner, one file at a time (the integration tests start real processes and ports).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 0 ] && set -- dist/test
mapfile -t files < <(find "$@" -name '*.spec.js' | sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "no test files under $*" >&2
  exit 1
fi
exec node --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
