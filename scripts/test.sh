#!/usr/bin/env bash
# The whole test suite: set-up (npm packages, etcd, helm, prometheus) when missing, build, lint,
# generated-code check, then every test. CI calls exactly this (`npm test`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm run build
npm run lint
npm run check:generated
bash scripts/run-tests.sh dist/test
