#!/usr/bin/env bash
# Fails when src/gen differs from what `buf generate` writes from proto/.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r src/gen "$tmp/before"
npx --no-install buf lint
npx --no-install buf generate
if ! diff -r "$tmp/before" src/gen >/dev/null; then
  echo "src/gen is stale: run 'npm run generate' and commit the result" >&2
  diff -r "$tmp/before" src/gen | head -20 >&2
  exit 1
fi
echo "generated code is up to date"
