#!/usr/bin/env bash
# Fresh machine → running dev cluster: set-up (npm packages, etcd from Debian), build, then
# `goulette dev` (embedded etcd, 3 sentinels, 3 brokers on loopback). Extra arguments go to `goulette dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
GOULETTE_SETUP_EXTRAS=none bash scripts/setup.sh
npm run build --silent
exec node dist/src/cmd/goulette.js dev "$@"
