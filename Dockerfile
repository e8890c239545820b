# kade: multi-stage image. Build: TypeScript with dev dependencies; runtime: production
# dependencies only, non-root, read-only-root-filesystem friendly (kade writes no files).
#
#   docker build -t kade:local .
#   docker run --rm -e KADE_KAFKA_BROKERS=kafka:9092 -e KADE_REDIS_URL=redis://redis:6379 kade:local run --role detector

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: all dependencies + tsc (only src/ is compiled: dist/src) ------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src/ src/
RUN npx tsc -p tsconfig.json && test -f dist/src/cli.js

# ---- runtime: production dependencies only ----------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    KAFKAJS_NO_PARTITIONER_WARNING=1 \
    KADE_HTTP_PORT=9464
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist/src/ dist/src/
# Read at run time through the package root (src/util/package-root.ts: the first ancestor of
# __dirname holding package.json AND schemas/): Avro schemas, rules, the Redis Lua scripts
# (src/state/lua), and the demo log for `kade demo` and the compose replay.
COPY schemas/ schemas/
COPY rules/ rules/
COPY src/state/lua/ src/state/lua/
COPY demo/ demo/
# The node image's unprivileged user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
EXPOSE 9464
# /live answers 200 while the process runs its HTTP server (kade run with KADE_HTTP_PORT > 0).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "require('http').get({host:'127.0.0.1',port:process.env.KADE_HTTP_PORT||9464,path:'/live',timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/src/cli.js"]
CMD ["run"]
