# syntax=docker/dockerfile:1
# One image for every Goulette process: `goulette sentinel`, `goulette broker`, and the CLI
# (`produce`, `consume`, `admin`). Build: docker build -t ghcr.io/goulette/goulette:0.1.0 .
#
# No etcd in here: the chart's dev mode (sentinel.embeddedEtcd) runs etcd as a sidecar from the etcd
# image, and `goulette sentinel --enable-embedded-etcd` / `goulette dev` in this image fail with a
# message naming the missing etcd binary. Mount one (or use the sidecar) if you need them.

# A Node.js LTS line (24: supported until April 2028; Node 20 reached end of life in April 2026). The
# code itself still runs on Node >= 20 (package.json engines); test/unit/dockerfile.spec.ts checks this line.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: all dependencies, compile TypeScript to dist/ ---------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# The web console (console/, bundled by scripts/build-console.ts into dist/console).
COPY console ./console
COPY scripts/build-console.ts ./scripts/
# tsconfig also includes test/ and bench/; they are not copied, and only dist/src and dist/console are
# shipped.
RUN npm run build

# --- runtime deps: production node_modules only, without install scripts -------------------------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# --- runtime -----------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="goulette" \
      org.opencontainers.image.description="Goulette: a distributed message queue (sentinel, broker, CLI)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
# A named user for uid 10001 (what the chart runs as), and the broker's default data dir.
RUN groupadd --system --gid 10001 goulette \
 && useradd --system --uid 10001 --gid goulette --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin goulette \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/goulette
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist/src ./dist/src
# Served by every sentinel at /ui/.
COPY --from=build /src/dist/console ./dist/console
# `goulette` on PATH, so that `kubectl exec <pod> -- goulette admin status` works. A wrapper rather
# than a symlink: it works whether or not the compiled entry point keeps its shebang and exec bit,
# and `exec` leaves node as PID 1 to receive SIGTERM.
RUN printf '#!/bin/sh\nexec node /app/dist/src/cmd/goulette.js "$@"\n' > /usr/local/bin/goulette \
 && chmod 0755 /usr/local/bin/goulette
USER 10001:10001
# 9090: sentinel (gRPC, Connect, gRPC-web, /healthz, /readyz, /metrics, the web console at /ui/);
# 9190: broker.
EXPOSE 9090 9190
ENTRYPOINT ["goulette"]
CMD ["--help"]
