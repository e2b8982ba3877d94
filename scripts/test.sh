#!/usr/bin/env bash
# The whole test suite: set-up (npm packages, etcd, helm, prometheus) when missing, build, lint,
# generated-code check, then every test. CI calls exactly this (`npm test`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run build
npm run lint
npm run check:generated
mapfile -t files < <(find dist/test -name '*.spec.js' | sort)
node --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
